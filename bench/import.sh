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
BIN=$PWD/target/release
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$BIN/muster-gen" --rows "$ROWS" --seed 42 --out "$work/v1.csv"
"$BIN/muster-gen" --rows "$ROWS" --seed 42 --change-percent 1 --out "$work/v2.csv"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MUSTER_DATA_DIR=$work/data MUSTER_URL=http://127.0.0.1:$port
MUSTER_LISTEN=127.0.0.1:$port "$BIN/muster" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -fs "$MUSTER_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

"$BIN/muster" admin mapping put workday examples/hr/mapping.toml >/dev/null
creds=$("$BIN/muster" admin client create --role importer --attributes '*' --grant-roles '*' --json)
export MUSTER_CLIENT_ID=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client"]["client_id"])')
export MUSTER_CLIENT_SECRET=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')

push() { # file -> seconds; checks the expected count
  local start end
  start=$(date +%s.%N)
  "$BIN/muster" push "$1" --mapping workday --wait 3600 --json > "$work/out.json"
  end=$(date +%s.%N)
  python3 - "$work/out.json" "$2" "$3" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["import"]
field, want = sys.argv[2], int(sys.argv[3])
assert v["state"] == "succeeded", v
assert v["counts"][field] >= want, (field, v["counts"])
PY
  python3 -c "print($end - $start)"
}

t_new=$(push "$work/v1.csv" created "$ROWS")
t_same=$(push "$work/v1.csv" unchanged "$ROWS")
t_change=$(push "$work/v2.csv" unchanged $((ROWS * 97 / 100)))
grep -o "ms=[0-9]*" "$work/serve.log" | sed "s/^/server import time /" >&2 || true
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""

s=$(date +%s.%N)
sqlite3 "$work/floor.db" ".mode csv" ".import $work/v1.csv people"
t_floor=$(python3 -c "print($(date +%s.%N) - $s)")

printf 'import-bench rows=%d all_new_s=%.2f unchanged_s=%.2f changed_1pct_s=%.2f peak_rss_mib=%d sqlite3_import_s=%.2f cores=%d\n' \
  "$ROWS" "$t_new" "$t_same" "$t_change" $((rss_kib / 1024)) "$t_floor" "$(nproc)"
