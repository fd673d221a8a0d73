#!/usr/bin/env bash
# Authentication benchmark: signed (RFC 9421 hmac-sha256) single-person PUT
# upserts, and private_key_jwt (ES256) token grants, each for SECONDS
# (default 10) from TASKS (default 32) concurrent SDK tasks over keep-alive
# loopback connections to a real `muster serve`. Prints one line.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-10}
TASKS=${TASKS:-32}
cargo build --release -q -p muster
cargo build --release -q -p muster-client --example auth_bench
source bench/lib.sh
work=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$work"' EXIT
export MUSTER_LOG=warn
bench_start "$work"

signer=$("$BIN/muster" admin client create --role syncer --attributes '*' --json | bench_json '["client"]["client_id"]')
"$BIN/muster" admin client key hmac "$signer" --json | bench_json '["hmac_key"]' > "$work/hmac.key"
jwt=$("$BIN/muster" admin client create --role importer --json | bench_json '["client"]["client_id"]')
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ec.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/ec.pem" -out "$work/jwt.pem"
openssl pkey -in "$work/jwt.pem" -pubout -out "$work/jwt.pub.pem"
"$BIN/muster" admin client key jwt "$jwt" "$work/jwt.pub.pem" >/dev/null

"$BIN/examples/auth_bench" "$MUSTER_URL" "$signer" "$work/hmac.key" "$jwt" "$work/jwt.pem" "$SECONDS_EACH" "$TASKS"
