#!/usr/bin/env python3
"""Validate the sample PIP files and compute the expected load results.

    python3 testdata/check_sample.py            # validate, print the README tables
    python3 testdata/check_sample.py --pg       # also load into a throwaway PostgreSQL
                                                # (.ci/pg-throwaway) and compare
    python3 testdata/check_sample.py --repro    # also rerun make_sample.py into a temp
                                                # dir and require byte-identical output

The file rules are those of the PIP format spec, as docs/design.md states them under "What is
checked" and "File-format decisions", implemented here independently of make_sample.py
(and of the loader), so that the two cannot share a mistake: field counts, varchar widths
in characters, dates (YYYY-MM-DD, YYYYMMDD, MM/DD/YYYY; 0000-00-00 / 00000000 = NULL),
integer, numeric(p,s) without rounding, code tables, NUL, UTF-8, trailer, keys, FKs.
"Load" semantics: within a file the last record of a key wins; a key not in the
table is inserted, one whose typed values differ is updated, otherwise unchanged.
"""
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_THROWAWAY = HERE.parent / ".ci" / "pg-throwaway"
MAX_ERRORS = 20

V = lambda n: ("v", n)
DATE = ("date",)
INT = ("int",)
NUM = lambda p, s: ("num", p, s)

CODES = {
    "issuer_type": "C M G S".split(),
    "issuer_status": "A D".split(),
    "issuer_transaction": "A B L N R T W".split(),
    "issue_status": "A T D X Z".split(),
    "issue_transaction": "A D L M S W".split(),
    "govt_stimulus_program": "A B C D E F G H M N P Q R T V".split(),
    "payment_frequency": "1 2 3 4 5 6 7 8 9 Z".split(),
    "sale_type": "C G".split(),
    "offering_amount_code": "K M B".split(),
}

ISSUER = [("issuer_num", V(6)), ("issuer_check", V(1)), ("issuer_name_1", V(30)), ("issuer_name_2", V(30)),
          ("issuer_name_3", V(30)), ("issuer_adl_1", V(30)), ("issuer_adl_2", V(30)), ("issuer_adl_3", V(30)),
          ("issuer_adl_4", V(30)), ("issuer_sort_key", V(30)), ("issuer_type", V(1)), ("issuer_status", V(1)),
          ("issuer_del_date", DATE), ("issuer_transaction", V(1)), ("issuer_state_code", V(2)),
          ("issuer_update_date", DATE)]
ISSUE = [("issuer_num", V(6)), ("issue_num", V(2)), ("issue_check", V(1)), ("issue_desc_1", V(30)),
         ("issue_desc_2", V(30)), ("issue_adl_1", V(30)), ("issue_adl_2", V(30)), ("issue_adl_3", V(30)),
         ("issue_adl_4", V(30)), ("issue_status", V(1)), ("dated_date", DATE), ("maturity_date", DATE),
         ("partial_maturity", INT), ("rate", NUM(6, 3)), ("govt_stimulus_program", V(10)),
         ("issue_transaction", V(1)), ("issue_update_date", DATE)]
ATTR = [("issuer_num", V(6)), ("issue_num", V(2)), ("alternative_min_tax", V(1)), ("bank_q", V(1)),
        ("callable", V(1)), ("activity_date", DATE), ("first_coupon_date", DATE), ("init_pub_off", V(1)),
        ("payment_frequency", V(1)), ("currency_code", V(3)), ("domicile_code", V(2)), ("underwriter", V(60)),
        ("us_cfi_code", V(6)), ("closing_date", DATE), ("ticker_symbol", V(10)), ("iso_cfi", V(6)),
        ("depos_eligible", V(1)), ("pre_refund", V(1)), ("refundable", V(1)), ("remarketed", V(1)),
        ("sinking_fund", V(1)), ("taxable", V(1))] + \
       [(c, V(50)) for c in ("form enhancements fund_distrb_policy fund_inv_policy fund_type guarantee "
                             "income_type insured_by ownership_restr payment_status preferred_type putable "
                             "rate_type redemption source_doc sponsoring voting_rights warrant_assets "
                             "warrant_status warrant_type where_traded").split()] + \
       [(c, V(60)) for c in "auditor paying_agent tender_agent xfer_agent bond_counsel financial_advisor".split()] + \
       [("municipal_sale_date", DATE), ("sale_type", V(1)), ("offering_amount", NUM(5, 1)),
        ("offering_amount_code", V(1))]
assert (len(ISSUER), len(ISSUE), len(ATTR)) == (16, 17, 53)

TYPES = {"R": ("issuer", ISSUER, 1), "E": ("issue", ISSUE, 2), "A": ("issue_attribute", ATTR, 2)}


def ftype(path):
    name = Path(path).name.upper()
    for suf in "REA":
        if name.endswith(suf + ".PIP"):
            return suf
    raise ValueError(path)


# --------------------------------------------------------------------------- value rules

RE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
RE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
RE_US = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
RE_INT = re.compile(r"^[+-]?\d+$")
RE_NUM = re.compile(r"^[+-]?(\d*)(?:\.(\d*))?$")


def date_style(v):
    if v in ("0000-00-00", "00000000"):
        return "zero"
    if RE_ISO.match(v):
        return "iso"
    if RE_COMPACT.match(v):
        return "compact"
    if RE_US.match(v):
        return "us"
    return None


def parse_date(v):
    style = date_style(v)
    if style is None:
        raise ValueError("bad date format")
    if style == "zero":
        return None
    if style == "iso":
        y, m, d = RE_ISO.match(v).groups()
    elif style == "compact":
        y, m, d = RE_COMPACT.match(v).groups()
    else:
        m, d, y = RE_US.match(v).groups()
    return dt.date(int(y), int(m), int(d))  # raises on 2024-02-30


def parse_num(v, p, s):
    m = RE_NUM.match(v)
    if not m or (m.group(1) == "" and not m.group(2)):
        raise ValueError("not a number")
    ip = m.group(1).lstrip("0")
    fp = (m.group(2) or "").rstrip("0")
    if len(ip) > p - s:
        raise ValueError(f"more than {p - s} integer digits")
    if len(fp) > s:
        raise ValueError(f"more than {s} decimals")
    return Decimal(v).quantize(Decimal(1).scaleb(-s))


def convert(col, typ, v):
    """text -> typed value (None for NULL); raises ValueError(kind, message)."""
    if v == "":
        return None
    if typ[0] == "v":
        if len(v) > typ[1]:
            raise ValueError("toolong", f"{len(v)} characters > {typ[1]}")
        if col in CODES and v not in CODES[col]:
            raise ValueError("badcode", "unknown code")
        return v
    if typ[0] == "date":
        try:
            return parse_date(v)
        except ValueError as e:
            raise ValueError("baddate", str(e))
    if typ[0] == "int":
        if not RE_INT.match(v) or not -2**31 <= int(v) < 2**31:
            raise ValueError("badint", "not an integer")
        return int(v)
    if typ[0] == "num":
        try:
            return parse_num(v, typ[1], typ[2])
        except ValueError as e:
            raise ValueError("badnum", str(e))
    raise AssertionError(typ)


# --------------------------------------------------------------------------- file reader

class Err:
    def __init__(self, line, column, kind, msg):
        self.line, self.column, self.kind, self.msg = line, column, kind, msg

    def __repr__(self):
        return f"line {self.line} {self.column or '-'}: {self.kind} ({self.msg})"


def read_pip(path, encoding="utf-8", tables=None):
    """Returns (records, errors, n_errors_total). records: list of (line, [text fields], typed tuple)."""
    suf = ftype(path)
    _, cols, nkey = TYPES[suf]
    data = Path(path).read_bytes()
    if data.endswith(b"\x1a"):
        data = data[:-1]
    elif data.endswith(b"\x1a\n") or data.endswith(b"\x1a\r\n"):
        data = data[:data.rindex(b"\x1a")] + data[data.rindex(b"\x1a") + 1:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    nonblank = [i for i, l in enumerate(lines) if l.rstrip(b"\r") != b""]
    errors, records = [], []
    trailer_idx = None
    if nonblank and lines[nonblank[-1]].startswith(b"999999"):
        trailer_idx = nonblank[-1]
    for i, raw in enumerate(lines):
        if i == trailer_idx:
            break
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if raw == b"":
            continue
        lineno = i + 1
        parts = raw.split(b"|")
        if len(parts) != len(cols):
            errors.append(Err(lineno, None, "fieldcount", f"expected {len(cols)} fields, found {len(parts)}"))
            continue
        fields, typed, bad = [], [], False
        for (col, typ), b in zip(cols, parts):
            if b"\x00" in b:
                errors.append(Err(lineno, col, "nul", repr(b))); bad = True; break
            try:
                v = b.decode(encoding)
            except UnicodeDecodeError:
                errors.append(Err(lineno, col, "badutf8", repr(b))); bad = True; break
            if v == "" and col in ("issuer_num", "issue_num"):
                errors.append(Err(lineno, col, "emptykey", "empty key")); bad = True; break
            try:
                typed.append(convert(col, typ, v))
            except ValueError as e:
                errors.append(Err(lineno, col, e.args[0], f"{v!r}: {e.args[1]}")); bad = True; break
            fields.append(v)
        if not bad:
            records.append((lineno, fields, tuple(typed)))
    if trailer_idx is None:
        errors.append(Err(f"EOF (after line {len(lines)})", None, "notrailer", "no 999999 trailer"))
    if tables is not None and suf in "EA":
        parent = tables["issuer"] if suf == "E" else tables["issue"]
        for lineno, f, _ in records:
            k = f[0] if suf == "E" else (f[0], f[1])
            if k not in parent:
                errors.append(Err(lineno, "issuer_num" if suf == "E" else "issuer_num, issue_num", "fk",
                                  f"{k!r} not in {'issuer' if suf == 'E' else 'issue'}"))
    errors.sort(key=lambda e: (0, e.line) if isinstance(e.line, int) else (1, 0))
    return records, errors[:MAX_ERRORS], len(errors)


def key_of(f, nkey):
    return f[0] if nkey == 1 else (f[0], f[1])


def load(tables, raw_tables, path, encoding="utf-8"):
    suf = ftype(path)
    table, cols, nkey = TYPES[suf]
    records, errors, nerr = read_pip(path, encoding, tables)
    if errors:
        return {"errors": errors, "nerrors": nerr}
    last, lines = {}, {}
    for lineno, f, typed in records:
        last[key_of(f, nkey)] = (f, typed)
        lines.setdefault(key_of(f, nkey), []).append(lineno)
    st = {"records": len(records), "repeated": len(records) - len(last), "inserted": 0, "updated": 0, "unchanged": 0,
          "detail": []}
    t, rt = tables[table], raw_tables[table]
    for k, (f, typed) in last.items():
        outcome = "inserted" if k not in t else "updated" if t[k] != typed else "unchanged"
        st["detail"].append((k, lines[k], outcome))
        if k not in t:
            st["inserted"] += 1
        elif t[k] != typed:
            st["updated"] += 1
            assert rt[k] != f, ("typed differs but text identical", k)
        else:
            st["unchanged"] += 1
            # the expected results must not depend on how a loader compares rows
            assert rt[k] == f, ("text differs but values equal: ambiguous test data", path, k)
        t[k] = typed
        rt[k] = f
    return st


def fresh():
    return {"issuer": {}, "issue": {}, "issue_attribute": {}}, {"issuer": {}, "issue": {}, "issue_attribute": {}}


SEQUENCE = ["CED01-15R.PIP", "CED01-15E.PIP", "CED01-15A.PIP", "CED01-16R.PIP", "CED01-16E.PIP", "CED01-16A.PIP"]

BAD_KINDS = {  # file -> (kind, description)
    "fieldcount-R.PIP": ("fieldcount", "wrong field count (15 instead of 16)"),
    "toolong-E.PIP": ("toolong", "varchar one character over width (31 > 30)"),
    "toolong-space-R.PIP": ("toolong", "varchar over width by one trailing space (31 > 30)"),
    "baddate-E.PIP": ("baddate", "impossible date `2024-02-30`"),
    "baddateformat-E.PIP": ("baddate", "bad date format `15/01/2024x`"),
    "badint-E.PIP": ("badint", "integer not a number (`TWELVE`)"),
    "numscale-E.PIP": ("badnum", "numeric too many decimals (`5.2505` into numeric(6,3))"),
    "numprecision-E.PIP": ("badnum", "numeric too many integer digits (`1234.5` into numeric(6,3))"),
    "badcode-E.PIP": ("badcode", "unknown code (issue_status `Q`)"),
    "badutf8-R.PIP": ("badutf8", "invalid UTF-8 (lone Latin-1 byte 0xE9)"),
    "nul-R.PIP": ("nul", "NUL byte in a field"),
    "notrailer-R.PIP": ("notrailer", "missing trailer (truncated file)"),
    "emptykey-R.PIP": ("emptykey", "empty key field (issuer_num)"),
    "fkissuer-E.PIP": ("fk", "issue whose issuer does not exist (`ZZZZZ9`)"),
    "fkissue-A.PIP": ("fk", "attribute whose issue does not exist"),
    "baddate25-E.PIP": ("baddate", "25 bad dates (at most 20 errors collected)"),
}


def main():
    args = sys.argv[1:]
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)

    # ---------------------------------------------------------------- load sequence
    tables, raw = fresh()
    results = []
    for name in SEQUENCE:
        st = load(tables, raw, HERE / name)
        if "errors" in st:
            print(name, st["errors"]); sys.exit(1)
        results.append((name, st))
    final = {k: len(v) for k, v in tables.items()}

    # ---------------------------------------------------------------- properties of the sample
    recs = {n: read_pip(HERE / n)[0] for n in SEQUENCE}
    day1 = {"R": recs["CED01-15R.PIP"], "E": recs["CED01-15E.PIP"], "A": recs["CED01-15A.PIP"]}
    for suf, cols in (("R", ISSUER), ("E", ISSUE), ("A", ATTR)):
        for ci, (col, _) in enumerate(cols):
            if col in CODES:
                seen = {f[ci] for _, f, _ in day1[suf]}
                missing = [c for c in CODES[col] if c not in seen]
                check(not missing, f"01-15 {suf}: codes of {col} never used: {missing}")
    rates = {f[13] for _, f, _ in day1["E"]}
    for v in ("5.25", "5.250", ".5", "0", "999.999"):
        check(v in rates, f"rate {v} missing")
    amounts = {f[51] for _, f, _ in day1["A"]}
    for v in ("12.5", "9999.9"):
        check(v in amounts, f"offering_amount {v} missing")
    styles = {}
    for suf, cols in (("R", ISSUER), ("E", ISSUE), ("A", ATTR)):
        for ci, (col, typ) in enumerate(cols):
            if typ == DATE:
                for _, f, _ in day1[suf]:
                    if f[ci]:
                        styles[date_style(f[ci])] = styles.get(date_style(f[ci]), 0) + 1
                        if date_style(f[ci]) == "zero":
                            styles[f[ci]] = styles.get(f[ci], 0) + 1
    for s in ("iso", "compact", "us", "0000-00-00", "00000000"):
        check(styles.get(s, 0) > 0, f"date style {s} missing")
    seg_end = seg_start = 0
    for suf, groups in (("R", [(2, 3, 4), (5, 6, 7, 8)]), ("E", [(3, 4), (5, 6, 7, 8)])):
        for _, f, _ in day1[suf]:
            for g in groups:
                vals = [f[i] for i in g]
                for j, v in enumerate(vals):
                    if v and j + 1 < len(vals) and vals[j + 1] and v.endswith(" "):
                        seg_end += 1
                    if v and j > 0 and v.startswith(" "):
                        seg_start += 1
    check(seg_end > 0 and seg_start > 0, f"segment edge spaces: end={seg_end} start={seg_start}")
    all1 = [(suf, ci, f[ci]) for suf in "REA" for _, f, _ in day1[suf] for ci in range(len(f))]
    mb_full = [(s, ci, v) for s, ci, v in all1
               if TYPES[s][1][ci][1][0] == "v" and len(v) == TYPES[s][1][ci][1][1] and len(v.encode()) > len(v)]
    check(len(mb_full) > 0, "no multibyte field at full width")
    check(any(not v.isascii() for _, _, v in all1), "no multibyte text")
    check(any('"' in v for _, _, v in all1), 'no "')
    check(any("\\" in v for _, _, v in all1), "no backslash")
    for suf in "REA":
        check(any(v == "" for s, _, v in all1 if s == suf), f"{suf}: no empty fields")
    for n in SEQUENCE:
        nkey = TYPES[ftype(n)][2]
        keys = [tuple(f[:nkey]) for _, f, _ in recs[n]]
        check(keys == sorted(keys), f"{n}: keys not sorted")
        for _, f, _ in recs[n]:
            check(re.fullmatch(r"[0-9A-Z]{6}", f[0]) is not None, f"{n}: issuer_num {f[0]!r}")
            check(not ("990000" <= f[0] <= "999999"), f"{n}: reserved issuer_num {f[0]}")
            if nkey == 2:
                check(re.fullmatch(r"[0-9A-Z]{2}", f[1]) is not None, f"{n}: issue_num {f[1]!r}")
        if n.startswith("CED01-16"):
            dup = {}
            for _, f, _ in recs[n]:
                dup.setdefault(tuple(f[:nkey]), []).append(f)
            multi = [v for v in dup.values() if len(v) > 1]
            check(any(v[0] != v[-1] for v in multi), f"{n}: no repeated key with differing records")
    r15 = {f[0] for _, f, _ in day1["R"]}
    e15 = {(f[0], f[1]) for _, f, _ in day1["E"]}
    check(all(f[0] in r15 for _, f, _ in day1["E"]), "01-15E issuer not in 01-15R")
    check(all((f[0], f[1]) in e15 for _, f, _ in day1["A"]), "01-15A issue not in 01-15E")
    check(len(day1["A"]) < len(day1["E"]), "every issue has an attribute (want 'most')")
    r16 = r15 | {f[0] for _, f, _ in recs["CED01-16R.PIP"]}
    e16 = e15 | {(f[0], f[1]) for _, f, _ in recs["CED01-16E.PIP"]}
    check(all(f[0] in r16 for _, f, _ in recs["CED01-16E.PIP"]), "01-16E issuer missing")
    check(all((f[0], f[1]) in e16 for _, f, _ in recs["CED01-16A.PIP"]), "01-16A issue missing")
    for n in SEQUENCE:
        b = (HERE / n).read_bytes()
        if n == "CED01-16E.PIP":
            check(b.count(b"\n") == b.count(b"\r\n") and b.endswith(b"\r\n"), f"{n}: not CRLF")
        else:
            check(b"\r" not in b, f"{n}: has CR")
        if n == "CED01-16A.PIP":
            check(b.endswith(b"\n\x1a"), f"{n}: no 0x1A after the last newline")
        else:
            check(b"\x1a" not in b, f"{n}: has 0x1A")
        trailer = b.rstrip(b"\x1a").rstrip(b"\r\n").rsplit(b"\n", 1)[-1].rstrip(b"\r")
        check(trailer == f"999999|TRAILER|{len(recs[n])}".encode(), f"{n}: trailer {trailer!r}")

    # ---------------------------------------------------------------- bad files
    base_r, base_raw = fresh()
    load(base_r, base_raw, HERE / "CED01-15R.PIP")
    base_e, base_eraw = fresh()
    load(base_e, base_eraw, HERE / "CED01-15R.PIP")
    load(base_e, base_eraw, HERE / "CED01-15E.PIP")
    bad_rows = []
    bad_files = sorted(p.name for p in (HERE / "bad").glob("*.PIP"))
    check(sorted(BAD_KINDS) == bad_files, f"bad/ files differ from the table: {bad_files}")
    for name in sorted(BAD_KINDS):
        kind, desc = BAD_KINDS[name]
        path = HERE / "bad" / name
        # syntactically clean apart from the injected error, and FK-clean against day 1
        t = base_e if ftype(name) == "A" else base_r
        recs_b, errs, nerr = read_pip(path, tables=t)
        kinds = sorted({e.kind for e in errs})
        check(kinds == [kind], f"{name}: error kinds {kinds} != [{kind}]: {errs}")
        n_data = len(recs_b) + len([e for e in errs if e.kind != "fk" and e.kind != "notrailer"])
        check(3 <= n_data <= 30, f"{name}: {n_data} records")
        first = errs[0]
        bad_rows.append((name, desc, first.line, first.column or "—", nerr, len(errs)))
        if name == "baddate25-E.PIP":
            check(nerr == 25 and len(errs) == 20, f"{name}: {nerr} errors")
        else:
            check(nerr == 1, f"{name}: {nerr} errors: {errs}")

    # ---------------------------------------------------------------- legacy encodings
    enc_rows = []
    for name, enc, must in (("latin1-R.PIP", "latin-1", [0xE9, 0xFC]), ("cp1252-R.PIP", "cp1252", [0x80, 0x93, 0x94])):
        path = HERE / "latin1" / name
        b = path.read_bytes()
        for byte in must:
            check(bytes([byte]) in b, f"{name}: byte {byte:#x} missing")
        _, errs_utf8, _ = read_pip(path)
        check(errs_utf8 and errs_utf8[0].kind == "badutf8", f"{name}: should fail as UTF-8")
        t, rt = fresh()
        for ln in (HERE / "CED01-15R.PIP",):
            load(t, rt, ln)
        st = load(t, rt, path, enc)
        check("errors" not in st, f"{name}: {st}")
        names = ["".join(f[2:5]) for _, f, _ in read_pip(path, enc)[0]]
        enc_rows.append((name, enc, st, names))

    # ---------------------------------------------------------------- optional checks
    if "--repro" in args:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, str(HERE / "make_sample.py"), d], check=True, capture_output=True)
            for p in sorted(Path(d).rglob("*.PIP")):
                rel = p.relative_to(d)
                check(p.read_bytes() == (HERE / rel).read_bytes(), f"not reproducible: {rel}")
            print("repro: byte-identical", file=sys.stderr)
    if "--pg" in args:
        pg = pg_crosscheck()
        for (name, st), (pname, pst) in zip(results, pg["files"]):
            check(name == pname and all(st[k] == pst[k] for k in pst), f"PG differs on {name}: {st} vs {pst}")
        check(pg["final"] == final, f"PG final counts {pg['final']} vs {final}")
        print("pg: PostgreSQL agrees:", pg["final"], file=sys.stderr)

    # ---------------------------------------------------------------- report
    print("| file | records read | repeated keys | inserted | updated | unchanged |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, st in results:
        print(f"| `{name}` | {st['records']} | {st['repeated']} | {st['inserted']} | {st['updated']} | {st['unchanged']} |")
    print()
    print("| table | rows after 01-15 | rows after 01-16 |")
    print("|---|---:|---:|")
    after15 = {"issuer": results[0][1]["inserted"], "issue": results[1][1]["inserted"],
               "issue_attribute": results[2][1]["inserted"]}
    for k in ("issuer", "issue", "issue_attribute"):
        print(f"| `{k}` | {after15[k]} | {final[k]} |")
    print()
    print("| file | kind | first error: line | column | errors found (collected) |")
    print("|---|---|---:|---|---|")
    for name, desc, line, col, nerr, ncol in bad_rows:
        print(f"| `bad/{name}` | {desc} | {line} | `{col}` | {nerr} ({ncol}) |".replace("`—`", "—"))
    print()
    print("Day 2, key by key (lines are 1-based file lines; the last one wins):")
    print()
    for name, st in results[3:]:
        print(f"- `{name}`: " + "; ".join(
            f"`{k if isinstance(k, str) else '/'.join(k)}` {outcome} (line{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))})"
            for k, ls, outcome in st["detail"]))
    print()
    for name, enc, st, names in enc_rows:
        print(f"- `latin1/{name}` ({enc}): {st['records']} records, inserted {st['inserted']} after CED01-15R; names: "
              + ", ".join(f"`{n}`" for n in names))
    if fails:
        print("\nFAILED CHECKS:", *fails, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("\nall checks passed", file=sys.stderr)


# --------------------------------------------------------------------------- PostgreSQL cross-check

def sqltype(typ):
    return {"v": lambda: f"varchar({typ[1]})", "date": lambda: "date", "int": lambda: "integer",
            "num": lambda: f"numeric({typ[1] if len(typ) > 1 else 0},{typ[2] if len(typ) > 2 else 0})"}[typ[0]]()


def copy_text(v):
    if v == "":
        return r"\N"
    return v.replace("\\", "\\\\").replace("\t", "\\t")


def pg_crosscheck():
    """Load the six files with PostgreSQL doing the typing and the comparison, in the
    throwaway cluster `make demo` uses too (.ci/pg-throwaway: initdb, a Unix socket only,
    removed afterwards)."""
    ddl = []
    for code, vals in CODES.items():
        ddl.append(f"CREATE TABLE ref_{code} (code varchar(10) PRIMARY KEY);")
        ddl.append(f"INSERT INTO ref_{code} VALUES " + ",".join(f"('{v}')" for v in vals) + ";")
    for suf in "REA":
        table, cols, nkey = TYPES[suf]
        defs = []
        for c, t in cols:
            d = f"{c} {sqltype(t)}"
            if c in CODES:
                d += f" REFERENCES ref_{c}"
            defs.append(d)
        pk = ", ".join(c for c, _ in cols[:nkey])
        fk = {"R": "", "E": ", FOREIGN KEY (issuer_num) REFERENCES issuer",
              "A": ", FOREIGN KEY (issuer_num, issue_num) REFERENCES issue"}[suf]
        ddl.append(f"CREATE TABLE {table} ({', '.join(defs)}, PRIMARY KEY ({pk}){fk});")
    script = ["SET client_min_messages = warning;", "SET DateStyle = 'ISO, MDY';", *ddl]
    for name in SEQUENCE:
        table, cols, nkey = TYPES[ftype(name)]
        names = [c for c, _ in cols]
        keys = names[:nkey]
        script.append("DROP TABLE IF EXISTS stg, d;")
        script.append(f"CREATE TEMP TABLE stg (LIKE {table}); ALTER TABLE stg ADD COLUMN line integer;")
        script.append(f"COPY stg ({', '.join(names)}, line) FROM stdin;")
        data = (HERE / name).read_bytes().replace(b"\r\n", b"\n").rstrip(b"\x1a").decode()
        for lineno, line in enumerate(data.split("\n"), 1):
            if not line or line.startswith("999999"):
                continue
            f = line.split("|")
            f = ["" if (typ == DATE and v in ("0000-00-00", "00000000")) else v for v, (_, typ) in zip(f, cols)]
            script.append("\t".join(copy_text(v) for v in f) + f"\t{lineno}")
        script.append("\\.")
        on = " AND ".join(f"t.{k} = d.{k}" for k in keys)
        script.append(f"CREATE TEMP TABLE d AS SELECT DISTINCT ON ({', '.join(keys)}) {', '.join(names)} "
                      f"FROM stg ORDER BY {', '.join(keys)}, line DESC;")
        script.append(
            f"SELECT 'FILE', '{name}', (SELECT count(*) FROM stg), (SELECT count(*) FROM stg) - (SELECT count(*) FROM d), "
            f"count(*) FILTER (WHERE t.{keys[0]} IS NULL), "
            f"count(*) FILTER (WHERE t.{keys[0]} IS NOT NULL AND ROW(d.*) IS DISTINCT FROM ROW(t.*)), "
            f"count(*) FILTER (WHERE t.{keys[0]} IS NOT NULL AND ROW(d.*) IS NOT DISTINCT FROM ROW(t.*)) "
            f"FROM d LEFT JOIN {table} t ON {on};")
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names[nkey:])
        script.append(f"INSERT INTO {table} SELECT * FROM d ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets};")
    script.append("SELECT 'FINAL', (SELECT count(*) FROM issuer), (SELECT count(*) FROM issue), "
                  "(SELECT count(*) FROM issue_attribute);")
    out = subprocess.run([str(PG_THROWAWAY), "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "|",
                          "-f", "-"], input="\n".join(script) + "\n", env=dict(os.environ, LC_ALL="C"),
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"pg: the cross-check failed (exit {out.returncode}):\n{out.stderr}")
    res = {"files": []}
    for line in out.stdout.splitlines():
        p = line.split("|")
        if p[0] == "FILE":
            res["files"].append((p[1], dict(zip(["records", "repeated", "inserted", "updated", "unchanged"],
                                                map(int, p[2:])))))
        elif p[0] == "FINAL":
            res["final"] = dict(zip(["issuer", "issue", "issue_attribute"], map(int, p[1:])))
    return res


if __name__ == "__main__":
    main()
