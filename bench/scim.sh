#!/usr/bin/env bash
# SCIM door benchmark: ROWS generated people (default 100000) imported
# through the real CLI into a real `muster serve`, then wrk over keep-alive
# loopback connections, DURATION seconds each (default 10), against
# `/scim/v2/Users` with the identity providers' lookup before a create
# (`filter=emails.value eq "..."`, a different person each request, from
# the index) and a first page of the list. Prints one line.
#
#   bench/scim.sh
#   BACKEND=postgres ROWS=100000 bench/scim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
BACKEND=${BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
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

"$BIN/muster-gen" --rows "$ROWS" --seed 7 --out "$work/people.csv"
# 1000 of the people's e-mail addresses (column 5), for the lookups.
python3 - "$work/people.csv" "$work/emails.txt" <<'PY'
import csv, random, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))[1:]
random.seed(7)
picked = [r[4] for r in random.sample(rows, min(1000, len(rows))) if r[4]]
open(sys.argv[2], "w").write("\n".join(picked) + "\n")
PY
bench_start "$work"
bench_importer
bench_push "$work/people.csv" created "$ROWS" >/dev/null
creds=$("$BIN/muster" admin client create --role scim --attributes '*' --grant-roles '*' --json)
client=$(echo "$creds" | bench_json '["client"]["client_id"]')
SCIM_TOKEN=$("$BIN/muster" admin client scim-token "$client" --json | bench_json '["token"]')
export SCIM_TOKEN EMAILS_FILE=$work/emails.txt

lookup=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/scim.lua "$MUSTER_URL" | grep '^scim-wrk')
export EMAILS_FILE=""
page=$(SCIM_PATH="/scim/v2/Users?count=100" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/scim.lua "$MUSTER_URL" | grep '^scim-wrk')
field() { echo "$1" | grep -o "$2=[0-9.]*" | cut -d= -f2; }
echo "scim-bench backend=$BACKEND people=$ROWS connections=$CONNECTIONS duration_s=$DURATION" \
  "lookup_rps=$(field "$lookup" rps) lookup_p50_ms=$(field "$lookup" p50_ms) lookup_p99_ms=$(field "$lookup" p99_ms)" \
  "lookup_misses=$(field "$lookup" misses) lookup_non200=$(field "$lookup" non200)" \
  "page100_rps=$(field "$page" rps) page100_p50_ms=$(field "$page" p50_ms) page100_p99_ms=$(field "$page" p99_ms)" \
  "page100_non200=$(field "$page" non200) cores=$(nproc)"
