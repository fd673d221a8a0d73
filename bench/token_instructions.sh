#!/usr/bin/env bash
# Instructions per token grant: a release `muster serve` under valgrind's
# callgrind, N client-credentials grants (default 4000) over one keep-alive
# loopback connection after 300 to warm up, and the instructions the whole
# process executed meanwhile divided by N. Unlike a rate, the count hardly
# depends on what else the machine does, so two builds compare exactly on
# a noisy machine (background work that runs by the clock, such as the
# webhook poller, adds a little to each side alike). Bounded: N requests,
# then the gateway is stopped by its PID. Prints one line.
#
#   bench/token_instructions.sh                     # this checkout's build
#   BIN=../old/target/release bench/token_instructions.sh
#                                                   # another build, as is
#   bench/compare.sh ../old 2 -- "$PWD/bench/token_instructions.sh"
#       (compare.sh sets BIN for each side; an older checkout may not have
#       this script, so pass this one's absolute path)
set -euo pipefail
N=${N:-4000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
if [ -z "${BIN:-}" ]; then
  cd "$(dirname "$0")/.."
  cargo build --release -q -p muster
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
fi
work=$(mktemp -d)
gw=""
trap '[ -n "$gw" ] && kill "$gw" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MUSTER_DATA_DIR=$work/data MUSTER_URL=http://127.0.0.1:$port
MUSTER_LISTEN=127.0.0.1:$port MUSTER_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$BIN/muster" serve 2>"$work/valgrind.log" &
gw=$!
up=""
for _ in $(seq 600); do curl -fs "$MUSTER_URL/healthz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
[ -n "$up" ] || { echo "the gateway did not start under valgrind" >&2; cat "$work/valgrind.log" >&2; exit 1; }
creds=$("$BIN/muster" admin client create --role importer --json)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client"]["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
grants() {
  python3 - "$port" "$id" "$secret" "$1" <<'PY'
import base64, http.client, sys
port, cid, secret, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
for _ in range(n):
    c.request("POST", "/oauth2/token", body="grant_type=client_credentials",
              headers={"Authorization": auth,
                       "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"a grant was answered {r.status}")
PY
}
grants 300
callgrind_control -z "$gw" >/dev/null 2>&1
start=$(date +%s.%N)
grants "$N"
end=$(date +%s.%N)
callgrind_control -d "$gw" >/dev/null 2>&1
total=$(cat "$work"/cg.out.* | awk '/^summary:/ { s += $2 } END { print s + 0 }')
python3 - "$total" "$N" "$start" "$end" <<'PY'
import sys
total, n, start, end = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"token-instructions grants={n} instructions_per_grant={total / n:.0f} "
      f"wall_s_under_valgrind={end - start:.1f}")
PY
