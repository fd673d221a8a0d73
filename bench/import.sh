#!/usr/bin/env bash
# Import benchmark: a generated Workday-style export of ROWS people (default
# 1,000,000) pushed through the real CLI to a real `muster serve` on
# loopback, three times: all new, unchanged, and with 1% of people changed.
# Beside them, `sqlite3 .import` of the same file as the floor, and the
# gateway's peak RSS. Prints one line of results.
#
#   bench/import.sh                 # 1,000,000 rows
#   ROWS=100000 bench/import.sh     # a quicker run
#   BACKEND=postgres bench/import.sh
#       the same on PostgreSQL (PG_URL, default
#       postgres://postgres@127.0.0.1:5432/postgres: a role that may create
#       databases), in a database made for the run and dropped after it;
#       the floor is then `psql \copy` of the file into an unindexed table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
BACKEND=${BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
cargo build --release -q -p muster -p muster-gen
source bench/lib.sh
work=$(mktemp -d)
db=""
drop_db() { [ -n "$db" ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; db=""; }
trap 'bench_cleanup; drop_db; rm -rf "$work"' EXIT
case $BACKEND in
  sqlite) ;;
  postgres)
    db=muster_bench_$$
    psql -q "$PG_URL" -c "CREATE DATABASE $db" >/dev/null
    export MUSTER_DATABASE_URL=${PG_URL%/*}/$db
    ;;
  *) echo "BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac

"$BIN/muster-gen" --rows "$ROWS" --seed 42 --out "$work/v1.csv"
"$BIN/muster-gen" --rows "$ROWS" --seed 42 --change-percent 1 --out "$work/v2.csv"
# The files just written (and any build) go to disk now, not during the
# first import, whose own fsyncs would wait behind them.
sync

bench_start "$work"
bench_importer

t_new=$(bench_push "$work/v1.csv" created "$ROWS")
t_same=$(bench_push "$work/v1.csv" unchanged "$ROWS")
t_change=$(bench_push "$work/v2.csv" unchanged $((ROWS * 97 / 100)))
grep -o "ms=[0-9]*" "$work/serve.log" | sed "s/^/server import time /" >&2 || true
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
bench_stop

s=$(date +%s.%N)
if [ "$BACKEND" = postgres ]; then
  cols=$(head -1 "$work/v1.csv" | tr -d '\r' | sed 's/[^,][^,]*/"&" text/g')
  psql -q "$MUSTER_DATABASE_URL" -c "CREATE TABLE floor ($cols)" >/dev/null
  psql -q "$MUSTER_DATABASE_URL" -c "\\copy floor FROM '$work/v1.csv' WITH (FORMAT csv, HEADER true)" >/dev/null
  floor_name=psql_copy_s
else
  sqlite3 "$work/floor.db" ".mode csv" ".import $work/v1.csv people"
  floor_name=sqlite3_import_s
fi
t_floor=$(python3 -c "print($(date +%s.%N) - $s)")

printf 'import-bench backend=%s rows=%d all_new_s=%.2f unchanged_s=%.2f changed_1pct_s=%.2f peak_rss_mib=%d %s=%.2f cores=%d\n' \
  "$BACKEND" "$ROWS" "$t_new" "$t_same" "$t_change" $((rss_kib / 1024)) "$floor_name" "$t_floor" "$(nproc)"
