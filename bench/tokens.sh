#!/usr/bin/env bash
# Token benchmark: OAuth 2.0 client-credentials grants (`ttl` policy) from
# wrk over keep-alive loopback connections against a real `muster serve`.
# Bounded: DURATION seconds (default 10). Prints one line of results.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p muster
BIN=$PWD/target/release
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MUSTER_DATA_DIR=$work/data MUSTER_URL=http://127.0.0.1:$port
MUSTER_LISTEN=127.0.0.1:$port MUSTER_LOG=warn "$BIN/muster" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -fs "$MUSTER_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
creds=$("$BIN/muster" admin client create --role importer --json)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client"]["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export BASIC_AUTH=$(printf '%s:%s' "$id" "$secret" | base64 -w0)

wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/token.lua "$MUSTER_URL/oauth2/token" > "$work/wrk.txt"
grep '^token-wrk' "$work/wrk.txt" | sed "s/^token-wrk/token-bench connections=$CONNECTIONS duration_s=$DURATION/"
