# Shared by the benchmarks: a release `muster serve` on a free loopback port
# with its own data directory, stopped and removed on exit. Source it after
# `cd` to the repository root.
#   bench_start DIR       start a gateway on DIR/data (sets MUSTER_URL, pid)
#   bench_stop            SIGTERM it and wait
#   bench_importer        create the `workday` mapping and an importer;
#                         exports MUSTER_CLIENT_ID / MUSTER_CLIENT_SECRET
#   bench_push FILE FIELD MIN [push args...]
#                         push and print the seconds it took; fails unless
#                         the import succeeded with counts.FIELD >= MIN
#   bench_cert DIR        a self-signed P-256 certificate for 127.0.0.1 in
#                         DIR (chain.pem, key.pem 0600), for [tls]
#   bench_build [ARGS...] build `muster` and `muster-gen` (and, with ARGS,
#                         what those cargo arguments name) in $PROFILE
#                         (release by default; dev for a quick check), and
#                         point BIN at them unless BIN was given
bench_bin_given=${BIN:-}
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}

bench_build() {
  PROFILE=${PROFILE:-release}
  local target=${CARGO_TARGET_DIR:-$PWD/target}
  if [ -z "$bench_bin_given" ]; then
    if [ "$PROFILE" = dev ]; then BIN=$target/debug; else BIN=$target/$PROFILE; fi
  fi
  cargo build --profile "$PROFILE" -q -p muster -p muster-gen
  if [ $# -gt 0 ]; then cargo build --profile "$PROFILE" -q "$@"; fi
}
pid=""
bench_cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }

bench_start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export MUSTER_DATA_DIR=$1/data MUSTER_URL=http://127.0.0.1:$port
  MUSTER_LISTEN=127.0.0.1:$port "$BIN/muster" serve 2>>"$1/serve.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "$MUSTER_URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the gateway did not start" >&2
  return 1
}

bench_stop() {
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

bench_cert() {
  mkdir -p "$1"
  ( umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$1/key.pem" -out "$1/chain.pem" -days 2 -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null )
}

bench_json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(v$1)"; }

bench_importer() {
  "$BIN/muster" admin mapping put workday examples/hr/mapping.toml >/dev/null
  local creds
  creds=$("$BIN/muster" admin client create --role importer --attributes '*' --grant-roles '*' --json)
  MUSTER_CLIENT_ID=$(echo "$creds" | bench_json '["client"]["client_id"]')
  MUSTER_CLIENT_SECRET=$(echo "$creds" | bench_json '["client_secret"]')
  export MUSTER_CLIENT_ID MUSTER_CLIENT_SECRET
}

bench_push() {
  local file=$1 field=$2 want=$3 start end out
  shift 3
  out=$(mktemp)
  start=$(date +%s.%N)
  "$BIN/muster" push "$file" --mapping workday --wait 3600 --json "$@" > "$out"
  end=$(date +%s.%N)
  python3 - "$out" "$field" "$want" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["import"]
field, want = sys.argv[2], int(sys.argv[3])
assert v["state"] == "succeeded", v
assert v["counts"][field] >= want, (field, v["counts"])
PY
  rm -f "$out"
  python3 -c "print($end - $start)"
}
