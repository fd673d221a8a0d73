#!/usr/bin/env bash
# SCIM door benchmark. ROWS generated people (default 1,000,000) are
# imported through the real CLI into a real `muster serve` on its embedded
# SQLite; SEED SCIM Users (default 1000) are created over SCIM; then wrk
# (bench/scim.lua), CONNECTIONS keep-alive loopback connections (default
# 16), DURATION seconds each (default 10), measures: creates
# (`POST /Users`, Entra-shaped, each one audited with its event), PATCHes
# (Entra's replace of two attributes on the seeded Users), the lookup
# before a create (`filter=userName eq "..."`, a different seeded User each
# time), the first list page (`count=100`) and a page in the middle of
# the people (`startIndex=ROWS/2`). The peer, scim2-server (the
# python-scim reference server, in-memory, installed into .tools/venv by
# scripts/install-test-tools), then gets the same SEED Users and the same
# creates, PATCHes, lookups and first page with the same wrk and
# concurrency. Prints one `scim-bench` line: the gateway's figures, the
# peer's, and gateway/peer throughput ratios. Stops what it starts.
#
#   bench/scim.sh
#   ROWS=100000 DURATION=5 bench/scim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
SEED=${SEED:-1000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
./scripts/install-test-tools >/dev/null
cargo build --release -q -p muster -p muster-gen
source bench/lib.sh
venv=$PWD/.tools/venv
work=$(mktemp -d)
peer=""
cleanup() {
  bench_cleanup
  [ -n "$peer" ] && kill "$peer" 2>/dev/null && wait "$peer" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# run NAME MODE [VAR=VALUE...]: one wrk measurement against $target.
run() {
  local name=$1 mode=$2
  shift 2
  local line
  line=$(env MODE="$mode" RUN_ID="$name$$" SCIM_BASE="$base" SCIM_TOKEN="$token" \
    IDS_FILE="$seeds/ids.txt" NAMES_FILE="$seeds/names.txt" "$@" \
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/scim.lua "$target" | grep '^scim-wrk')
  echo "$line" >&2
  local f
  for f in rps p50_ms p99_ms unexpected misses; do
    printf '%s_%s=%s ' "$name" "$f" "$(echo "$line" | grep -o "\b$f=[0-9.]*" | cut -d= -f2)"
  done
}
field() { echo "$1" | grep -o "\b$2=[0-9.]*" | cut -d= -f2; }

# The gateway, with ROWS people.
"$BIN/muster-gen" --rows "$ROWS" --seed 7 --out "$work/people.csv"
bench_start "$work"
bench_importer
t_import=$(bench_push "$work/people.csv" created "$ROWS")
rm -f "$work/people.csv"
creds=$("$BIN/muster" admin client create --role scim --attributes '*' --grant-roles '*' --json)
client=$(echo "$creds" | bench_json '["client"]["client_id"]')
token=$("$BIN/muster" admin client scim-token "$client" --json | bench_json '["token"]')
target=$MUSTER_URL base=/scim/v2 seeds=$work/gw
mkdir -p "$seeds"
"$venv/bin/python" bench/scim_seed.py "$MUSTER_URL/scim/v2" "$token" "$SEED" "$seeds"
gw="$(run create create)$(run patch patch)$(run filter filter)$(run page get SCIM_PATH='/Users?count=100')"
gw="$gw$(run midpage get SCIM_PATH="/Users?count=100&startIndex=$((ROWS / 2))")"
bench_stop

# The peer, on a free port, with the same SEED Users.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=peer-$$
"$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" 2>"$work/peer.log" &
peer=$!
for _ in $(seq 100); do curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/ServiceProviderConfig" >/dev/null 2>&1 && break; sleep 0.1; done
target=http://127.0.0.1:$port base="" seeds=$work/peer
mkdir -p "$seeds"
"$venv/bin/python" bench/scim_seed.py "$target" "$token" "$SEED" "$seeds"
pr="$(run peer_create create)$(run peer_patch patch)$(run peer_filter filter)$(run peer_page get SCIM_PATH='/Users?count=100')"
kill "$peer"; wait "$peer" 2>/dev/null || true; peer=""

ratio() { python3 -c "a, b = float('$1' or 0), float('$2' or 0); print(f'{a / b:.1f}' if b else 'inf')"; }
ratios=""
for m in create patch filter page; do
  ratios="$ratios${m}_rps_ratio=$(ratio "$(field "$gw" "${m}_rps")" "$(field "$pr" "peer_${m}_rps")") "
done
echo "scim-bench people=$ROWS seed=$SEED connections=$CONNECTIONS duration_s=$DURATION import_s=$(printf '%.2f' "$t_import")" \
  "$gw$pr$ratios cores=$(nproc)" | sed 's/  */ /g'
