#!/usr/bin/env bash
# Token benchmark: OAuth 2.0 client-credentials grants (`ttl` policy) from
# wrk over keep-alive loopback connections against real `muster serve`
# instances. Bounded: DURATION seconds (default 10). Prints one line.
#
#   bench/tokens.sh                               # one gateway, SQLite
#   BACKEND=postgres bench/tokens.sh              # one gateway, PostgreSQL
#   BACKEND=postgres INSTANCES=2 bench/tokens.sh  # two gateways, one database
#
# With PostgreSQL the run gets its own database (PG_URL, default
# postgres://postgres@127.0.0.1:5432/postgres: a role that may create
# databases), dropped afterwards. With several instances, one wrk per
# instance (CONNECTIONS split between them) runs at the same time; the
# line gives their summed rate and the worst of their p50 and p99.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
BACKEND=${BACKEND:-sqlite}
INSTANCES=${INSTANCES:-1}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p muster
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d)
pids=()
db=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$db" ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

case $BACKEND in
  sqlite)
    [ "$INSTANCES" = 1 ] || { echo "several instances need BACKEND=postgres" >&2; exit 2; } ;;
  postgres)
    db=muster_tokens_$$
    psql -q "$PG_URL" -c "CREATE DATABASE $db" >/dev/null
    export MUSTER_DATABASE_URL=${PG_URL%/*}/$db
    ;;
  *) echo "BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac

# The instances share one data directory: the master key and the first
# instance's initial admin token.
export MUSTER_DATA_DIR=$work/data
urls=()
for i in $(seq "$INSTANCES"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  url=http://127.0.0.1:$port
  MUSTER_LISTEN=127.0.0.1:$port MUSTER_LOG=warn "$BIN/muster" serve 2>>"$work/serve.log" &
  pids+=($!)
  up=""
  for _ in $(seq 100); do curl -fs "$url/healthz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
  [ -n "$up" ] || { echo "gateway $i did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
  urls+=("$url")
done
export MUSTER_URL=${urls[0]}
creds=$("$BIN/muster" admin client create --role importer --json)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client"]["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export BASIC_AUTH=$(printf '%s:%s' "$id" "$secret" | base64 -w0)

threads=$(( INSTANCES > 1 ? 1 : 2 ))
per=$(( CONNECTIONS / INSTANCES ))
i=0
loads=()
for url in "${urls[@]}"; do
  i=$((i + 1))
  wrk -t"$threads" -c"$per" -d"${DURATION}s" --latency -s bench/token.lua "$url/oauth2/token" > "$work/wrk.$i.txt" &
  loads+=($!)
done
# wrk stops by itself after DURATION.
for p in "${loads[@]}"; do wait "$p"; done
python3 - "$BACKEND" "$INSTANCES" "$CONNECTIONS" "$DURATION" "$work"/wrk.*.txt <<'PY'
import re, sys
backend, instances, conns, duration = sys.argv[1:5]
runs = []
for path in sys.argv[5:]:
    line = next(l for l in open(path) if l.startswith("token-wrk"))
    runs.append(dict(re.findall(r"(\w+)=([0-9.]+)", line)))
total = lambda k: sum(int(r[k]) for r in runs)
worst = lambda k: max(float(r[k]) for r in runs)
print(f"token-bench backend={backend} instances={instances} connections={conns} "
      f"duration_s={duration} requests={total('requests')} non200={total('non200')} "
      f"rps={sum(float(r['rps']) for r in runs):.0f} p50_ms={worst('p50_ms'):.2f} "
      f"p99_ms={worst('p99_ms'):.2f}")
PY
