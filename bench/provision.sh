#!/usr/bin/env bash
# Provisioning into a SCIM target (docs/provisioning.md): a real `muster
# serve` on loopback with ROWS generated people (default 2,000) imported,
# and scim2-server (the reference SCIM server, from .tools/venv) on a
# loopback port as the target. ROUNDS times, alternating, each on a fresh
# (empty) target:
#   1. gateway: a `scim` subscription (CONCURRENCY requests in flight, no
#      rate limit, no groups) provisions the people already there; timed
#      until the target holds a User for each who is not terminated; then
#      an import that changes every person, timed until the subscription's
#      cursor has passed its events (people synced a second: at most one
#      PATCH each, none where nothing the target gets changed);
#   2. ceiling: a plain client creates ROWS Users with the same body, then
#      PATCHes each, from CONCURRENCY threads: what the target can take.
# Prints one line: the rates (medians) and their ratios to the ceiling.
#
#   bench/provision.sh
#   ROWS=300 ROUNDS=1 PROFILE=dev bench/provision.sh   # does it work?
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-2000}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-4}
source bench/lib.sh
bench_build
scripts/install-test-tools >/dev/null
venv=.tools/venv
work=$(mktemp -d)
peer=""
stop_peer() { [ -n "$peer" ] && kill "$peer" 2>/dev/null; wait "$peer" 2>/dev/null || true; peer=""; }
trap 'stop_peer; bench_cleanup; rm -rf "$work"' EXIT
token=bench-$$
printf '%s\n' "$token" >"$work/token"
printf 'concurrency = %d\nrate_per_second = 0\ngroups = false\n' "$CONCURRENCY" >"$work/target.toml"

start_peer() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" >/dev/null 2>&1 &
  peer=$!
  base=http://127.0.0.1:$port/v2
  for _ in $(seq 100); do curl -fs "$base/ServiceProviderConfig" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "scim2-server did not start" >&2
  return 1
}

# The subscription's cursor once it has passed cursor HEAD (waits).
wait_cursor() {
  local id=$1 head=$2 start now
  start=$(date +%s.%N)
  while :; do
    now=$("$BIN/muster" admin subscription show "$id" --json | bench_json '["cursor"]')
    [ "$now" -ge "$head" ] && break
    sleep 0.05
  done
  python3 -c "print($(date +%s.%N) - $start)"
}

# The newest event's cursor: where a subscription made now starts.
head_cursor() {
  local v id
  v=$("$BIN/muster" admin subscription create http://127.0.0.1:9/probe --attributes '*' --json)
  id=$(echo "$v" | bench_json '["subscription"]["id"]')
  "$BIN/muster" admin subscription delete "$id" >/dev/null
  echo "$v" | bench_json '["subscription"]["cursor"]'
}

"$BIN/muster-gen" --rows "$ROWS" --seed 5 --out "$work/people.csv"
"$BIN/muster-gen" --rows "$ROWS" --seed 5 --change-percent 100 --out "$work/changed.csv"
export MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS=true MUSTER_WEBHOOKS__POLL_INTERVAL_MS=20
bench_start "$work"
bench_importer
bench_push "$work/people.csv" created "$ROWS" >/dev/null
# Nobody is created only to be inactive: the target gets the others.
not_terminated() { python3 -c "import csv,sys; print(sum(r['Worker Status'] != 'T' for r in csv.DictReader(open(sys.argv[1]))))" "$1"; }
active_people=$(not_terminated "$work/people.csv") active_changed=$(not_terminated "$work/changed.csv")

creates=() patches=() c_creates=() c_patches=()
for r in $(seq "$ROUNDS"); do
  # Odd rounds start from the first file's state, even ones from the changed.
  if [ $((r % 2)) -eq 1 ]; then active=$active_people; else active=$active_changed; fi
  start_peer
  id=$("$BIN/muster" admin subscription create "$base" --kind scim --attributes '*' \
    --scim-settings "$work/target.toml" --scim-token-file "$work/token" --json |
    bench_json '["subscription"]["id"]')
  took=$("$venv/bin/python" bench/scim_peer.py wait "$base" "$token" "$active" 600)
  creates+=("$(python3 -c "print(round($active / $took))")")
  # Every person changed: one PATCH each (the people file alternates
  # between the two versions, so each round changes everyone).
  if [ $((r % 2)) -eq 1 ]; then file=$work/changed.csv; else file=$work/people.csv; fi
  bench_push "$file" updated "$((ROWS / 2))" >/dev/null
  took=$(wait_cursor "$id" "$(head_cursor)")
  patches+=("$(python3 -c "print(round($ROWS / $took))")")
  "$BIN/muster" admin subscription delete "$id" >/dev/null
  stop_peer
  start_peer
  read -r c p < <("$venv/bin/python" bench/scim_peer.py ceiling "$base" "$token" "$ROWS" "$CONCURRENCY")
  c_creates+=("$c") c_patches+=("$p")
  stop_peer
done
bench_stop

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gc=$(median "${creates[@]}") gp=$(median "${patches[@]}")
cc=$(median "${c_creates[@]}") cp=$(median "${c_patches[@]}")
printf 'provision: creates_per_s=%d ceiling_creates_per_s=%d create_ratio=%.2f updated_per_s=%d ceiling_patches_per_s=%d update_ratio=%.2f people=%d provisioned=%d concurrency=%d rounds=%d cores=%d\n' \
  "$gc" "$cc" "$(python3 -c "print($gc / $cc)")" "$gp" "$cp" "$(python3 -c "print($gp / $cp)")" \
  "$ROWS" "$active_people" "$CONCURRENCY" "$ROUNDS" "$(nproc)"
