#!/usr/bin/env bash
# Stonebranch (or any scheduler / cron) wrapper around cusip-loader: loads one date's PIP files.
#
#   stonebranch-load.sh [YYYY-MM-DD] [LOADER FLAGS...]
#
#   YYYY-MM-DD  the date to load; default: today in $TZ (set TZ, e.g. America/New_York)
#   LOADER FLAGS passed through unchanged after `--date D` (with CUSIP_OUTPUT=json), e.g. --validate-only,
#               --force, --allow-missing, --dir DIR, --s3-bucket B
#
# Environment:
#   CUSIP_LOADER       the loader binary (default: cusip-loader on the PATH)
#   CUSIP_SUMMARY_DIR  if set, the JSON summary is also written there as
#                      cusip-load-<date>-<UTC time>-<pid>.json (the directory is created)
#   CUSIP_*            the loader's own configuration (CUSIP_FILE_SOURCE, CUSIP_S3_BUCKET,
#                      CUSIP_DB_HOST, ...): see docs/operations.md
#
# stdout: the loader's JSON summary, as it printed it. stderr: the loader's logs, then one line
# `stonebranch-load: exit N: meaning`. The exit status is the loader's, unchanged, so the
# scheduler can branch on it: 75, 69, 130, 143 are safe to rerun; 66 once the files are
# there; 65 needs a person.
# SIGTERM / SIGINT sent to this script are passed on to the loader, which rolls back and exits
# 143 / 130 within seconds; the script then exits with that code.

set -uo pipefail

prog=stonebranch-load

say() { printf '%s: %s\n' "$prog" "$*" >&2; }

# One line for the job log; the codes are the loader's (see `cusip-loader --help`).
meaning() {
  case "$1" in
    0) echo "ok, every file loaded (or validated, or already loaded)" ;;
    64) echo "usage error: fix the job's arguments" ;;
    65) echo "data rejected, nothing committed: a person must look at the file (do not rerun blindly)" ;;
    66) echo "input not found: files not delivered yet or wrong bucket/prefix/dir; rerun once they are there" ;;
    69) echo "database unavailable: transient, safe to rerun later" ;;
    70) echo "internal error in the loader: report a bug (rerun is safe)" ;;
    75) echo "transient (connection lost, timeout, S3 unreachable or object changed): safe to rerun" ;;
    77) echo "permission denied (credentials, IAM or database grants): fix access, then rerun" ;;
    78) echo "configuration missing or wrong (e.g. schema not applied): fix the configuration, then rerun" ;;
    127) echo "loader binary not found: set CUSIP_LOADER or put cusip-loader on the PATH" ;;
    130) echo "interrupted (SIGINT), rolled back: safe to rerun" ;;
    143) echo "terminated (SIGTERM), rolled back: safe to rerun" ;;
    *) echo "unexpected exit code: a person should look at the log" ;;
  esac
}

finish() {
  say "exit $1: $(meaning "$1")"
  exit "$1"
}

# --- arguments -------------------------------------------------------------------------------
if [ $# -gt 0 ] && [[ $1 != -* ]]; then
  load_date=$1
  shift
else
  if [ -z "${TZ:-}" ]; then
    say "warning: TZ is not set; 'today' is the machine's local date"
  fi
  if ! load_date=$(date +%Y-%m-%d); then
    say "cannot read today's date"
    finish 70
  fi
fi
if ! [[ $load_date =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
  say "expected a date YYYY-MM-DD as the first argument, got '$load_date'"
  say "usage: $0 [YYYY-MM-DD] [cusip-loader flags...]"
  finish 64
fi

loader=${CUSIP_LOADER:-cusip-loader}
if ! command -v -- "$loader" >/dev/null 2>&1; then
  say "loader not found: '$loader'"
  finish 127
fi

# --- where the summary goes ------------------------------------------------------------------
summary_dir=${CUSIP_SUMMARY_DIR:-}
if [ -n "$summary_dir" ]; then
  if ! mkdir -p -- "$summary_dir" || [ ! -w "$summary_dir" ]; then
    say "CUSIP_SUMMARY_DIR '$summary_dir' cannot be created or is not writable"
    finish 78
  fi
  summary_file="$summary_dir/cusip-load-$load_date-$(date -u +%Y%m%dT%H%M%SZ)-$$.json"
  tmp=$(mktemp "$summary_dir/.cusip-load.XXXXXX") || finish 78
else
  summary_file=
  tmp=$(mktemp "${TMPDIR:-/tmp}/cusip-load.XXXXXX") || finish 70
fi
trap 'rm -f -- "$tmp"' EXIT

# --- run -------------------------------------------------------------------------------------
say "loading $load_date with $loader (TZ=${TZ:-unset})"
# In the background so that this shell can pass SIGTERM / SIGINT on (a foreground child would
# only be signalled if the whole process group is).
CUSIP_OUTPUT=json "$loader" --date "$load_date" "$@" >"$tmp" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT

while :; do
  wait "$child"
  rc=$?
  # Above 128, either the loader's own status (130, 143) or `wait` cut short by a trapped
  # signal while the loader is still rolling back: then wait again.
  if [ "$rc" -le 128 ]; then
    break
  fi
  if ! kill -0 "$child" 2>/dev/null; then
    # Gone: bash remembers its status, so this returns the loader's real exit code.
    wait "$child"
    rc=$?
    break
  fi
done
trap - TERM INT

# --- report ----------------------------------------------------------------------------------
if [ -s "$tmp" ]; then
  cat -- "$tmp"
  if [ -n "$summary_file" ]; then
    # mktemp made it 0600; a summary holds no secret and operators read it.
    if chmod 0644 -- "$tmp" && mv -f -- "$tmp" "$summary_file"; then
      say "summary: $summary_file"
    else
      say "warning: could not write $summary_file"
    fi
  fi
else
  say "the loader printed no summary (see its messages above)"
fi

finish "$rc"
