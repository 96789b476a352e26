#!/usr/bin/env python3
"""Validate the output of `cargo run --example generate` (small N: it holds keys in memory).

    python3 testdata/validate_generated.py DIR MM-DD [PREV_DIR PREV_MM-DD]

Checks every record of CED{MM-DD}{R,E,A}.PIP with the rules of check_sample.py (field
counts, widths in characters, dates, numerics, codes, UTF-8, trailer), sorted unique keys
(then only repeats of them: `--repeat-pct` amendments), foreign keys, one attribute per
issue, no reserved issuer numbers. With a previous day's directory it also reports how many
rows are unchanged / changed / new / gone.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_sample as cs  # noqa: E402


def load_day(d, day):
    out = {}
    tables, _ = cs.fresh()
    for suf in "REA":
        path = Path(d) / f"CED{day}{suf}.PIP"
        recs, errs, nerr = cs.read_pip(path, tables=tables)
        if errs:
            sys.exit(f"{path}: {nerr} errors, first: {errs[:5]}")
        table, cols, nkey = cs.TYPES[suf]
        keys = [tuple(f[:nkey]) for _, f, _ in recs]
        # Sorted unique keys, then any amendments (generate --repeat-pct): repeats of keys
        # of the sorted part, appended before the trailer.
        body = next((i for i in range(1, len(keys)) if keys[i] <= keys[i - 1]), len(keys))
        if keys[:body] != sorted(set(keys[:body])):
            sys.exit(f"{path}: keys not sorted/unique")
        if not set(keys[body:]) <= set(keys[:body]):
            sys.exit(f"{path}: an amendment repeats no key of the file")
        for k in keys:
            if "990000" <= k[0] <= "999999":
                sys.exit(f"{path}: reserved issuer number {k[0]}")
        for _, f, typed in recs:
            tables[table][cs.key_of(f, nkey)] = typed
        out[suf] = {tuple(f[:nkey]): "|".join(f) for _, f, _ in recs}
        print(f"{path.name}: {len(recs)} records OK", file=sys.stderr)
    if set(out["A"]) != set(out["E"]):
        sys.exit("attribute keys != issue keys")
    return out


def main():
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    today = load_day(sys.argv[1], sys.argv[2])
    if len(sys.argv) == 5:
        prev = load_day(sys.argv[3], sys.argv[4])
        for suf in "REA":
            a, b = prev[suf], today[suf]
            same = sum(1 for k in b if k in a and a[k] == b[k])
            changed = sum(1 for k in b if k in a and a[k] != b[k])
            new = sum(1 for k in b if k not in a)
            gone = sum(1 for k in a if k not in b)
            print(f"{suf}: unchanged {same}, changed {changed} ({100 * changed / max(1, len(a)):.2f}%), "
                  f"new {new} ({100 * new / max(1, len(a)):.2f}%), gone {gone}")
            if gone:
                sys.exit("rows disappeared")
    print("valid")


if __name__ == "__main__":
    main()
