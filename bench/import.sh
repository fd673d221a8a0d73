#!/usr/bin/env bash
# Import benchmark: a generated Workday-style export of ROWS people (default
# 1,000,000) pushed through the real CLI to a real `muster serve` on
# loopback, three times: all new, unchanged, and with 1% of people changed.
# Beside them, `sqlite3 .import` of the same file as the floor, and the
# gateway's peak RSS. Prints one line of results.
#
#   bench/import.sh                 # 1,000,000 rows
#   ROWS=100000 bench/import.sh     # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
cargo build --release -q -p muster -p muster-gen
source bench/lib.sh
work=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$work"' EXIT

"$BIN/muster-gen" --rows "$ROWS" --seed 42 --out "$work/v1.csv"
"$BIN/muster-gen" --rows "$ROWS" --seed 42 --change-percent 1 --out "$work/v2.csv"

bench_start "$work"
bench_importer

t_new=$(bench_push "$work/v1.csv" created "$ROWS")
t_same=$(bench_push "$work/v1.csv" unchanged "$ROWS")
t_change=$(bench_push "$work/v2.csv" unchanged $((ROWS * 97 / 100)))
grep -o "ms=[0-9]*" "$work/serve.log" | sed "s/^/server import time /" >&2 || true
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
bench_stop

s=$(date +%s.%N)
sqlite3 "$work/floor.db" ".mode csv" ".import $work/v1.csv people"
t_floor=$(python3 -c "print($(date +%s.%N) - $s)")

printf 'import-bench rows=%d all_new_s=%.2f unchanged_s=%.2f changed_1pct_s=%.2f peak_rss_mib=%d sqlite3_import_s=%.2f cores=%d\n' \
  "$ROWS" "$t_new" "$t_same" "$t_change" $((rss_kib / 1024)) "$t_floor" "$(nproc)"
