#!/usr/bin/env bash
# Fan-out benchmark (docs/events.md#delivery-across-instances): a real `muster serve` on loopback delivering
# to a small fast local receiver (crates/muster-server/examples/
# webhook_receiver.rs, which checks every Standard Webhooks signature).
#   1. import_to_last_delivery_s: an initial import of ROWS generated people
#      (default 1,000,000) with one subscription attached, from the start of
#      the push until the receiver has the last of its events;
#   2. deliveries_per_s: a subscription created `--from-beginning` on that
#      backlog, until BACKLOG (default 20,000) events have arrived;
#   3. p50_ms / p99_ms: LATENCY_N (default 200) single upserts, 20 ms apart,
#      each event's time from its commit (the change's timestamp) to its
#      first delivery attempt reaching the receiver.
# Prints one line of results.
#
#   bench/fanout.sh                          # 1,000,000 rows
#   ROWS=20000 bench/fanout.sh               # a quicker run
#   ROWS=2000 PROFILE=dev bench/fanout.sh    # does it work (debug build)?
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
BACKLOG=${BACKLOG:-20000}
LATENCY_N=${LATENCY_N:-200}
source bench/lib.sh
bench_build -p muster-server --example webhook_receiver
work=$(mktemp -d)
rx_pid=""
trap '[ -n "$rx_pid" ] && kill "$rx_pid" 2>/dev/null; bench_cleanup; rm -rf "$work"' EXIT

now_ms() { date +%s%3N; }

"$BIN/muster-gen" --rows "$ROWS" --seed 7 --out "$work/people.csv"
"$BIN/examples/webhook_receiver" >"$work/rx.addr" 2>"$work/rx.log" &
rx_pid=$!
for _ in $(seq 100); do [ -s "$work/rx.addr" ] && break; sleep 0.1; done
RX=http://$(head -1 "$work/rx.addr")

export MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS=true
bench_start "$work"
bench_importer

# sub_create NAME [--from-beginning]: prints "ID CURSOR"; the receiver
# verifies /NAME with the subscription's secret.
sub_create() {
  local name=$1 out
  shift
  out=$("$BIN/muster" admin subscription create "$RX/$name" --attributes '*' --json "$@")
  echo "$out" | bench_json '["secret"]' | curl -fsS -X PUT --data-binary @- "$RX/control/secret/$name"
  echo "$(echo "$out" | bench_json '["subscription"]["id"]') $(echo "$out" | bench_json '["subscription"]["cursor"]')"
}
stat() { curl -fsS "$RX/control/stats/$1${3:-}" | bench_json "[\"$2\"]"; }
# wait_for NAME COUNT: until the receiver has COUNT distinct events at /NAME.
wait_for() {
  while [ "$(stat "$1" distinct)" -lt "$2" ]; do sleep 0.2; done
  [ "$(stat "$1" bad_signatures)" = 0 ] || { echo "bad signatures at /$1" >&2; exit 1; }
}
# The newest event cursor: where a subscription made now would start.
head_cursor() {
  local id_cursor
  id_cursor=$("$BIN/muster" admin subscription create "$RX/probe" --attributes '*' --json |
    bench_json '["subscription"]["id"] + " " + str(v["subscription"]["cursor"])')
  "$BIN/muster" admin subscription delete "${id_cursor% *}" >/dev/null
  echo "${id_cursor#* }"
}

# 1. The initial import with one subscription attached.
read -r s1 c1 < <(sub_create s1)
t0=$(now_ms)
bench_push "$work/people.csv" created "$ROWS" >/dev/null
events=$(($(head_cursor) - c1))
wait_for s1 "$events"
import_s=$(python3 -c "print(($(stat s1 last_ms) - $t0) / 1000)")

# 2. Throughput on a backlog.
n=$((BACKLOG < events ? BACKLOG : events))
t1=$(now_ms)
read -r s2 _ < <(sub_create s2 --from-beginning)
wait_for s2 "$n"
per_s=$(python3 -c "print($n / (($(stat s2 nth_ms "?n=$n") - $t1) / 1000))")
"$BIN/muster" admin subscription delete "$s2" >/dev/null

# 3. Commit to first delivery attempt, one change at a time.
curl -fsS -X DELETE "$RX/control/stats/s1"
creds=$("$BIN/muster" admin client create --role syncer --attributes '*' --grant-roles '*' --json)
python3 - "$MUSTER_URL" "$LATENCY_N" "$creds" <<'PY'
import base64, json, sys, time, urllib.request
url, n, creds = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
basic = base64.b64encode(f'{creds["client"]["client_id"]}:{creds["client_secret"]}'.encode()).decode()
req = urllib.request.Request(f"{url}/oauth2/token", data=b"grant_type=client_credentials",
    headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
token = json.load(urllib.request.urlopen(req))["access_token"]
for i in range(n):
    body = json.dumps({"attributes": {"given_name": f"Latency{i}"}}).encode()
    r = urllib.request.Request(f"{url}/api/v1/people/LAT{i:06d}", data=body, method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(r).read()
    time.sleep(0.02)
PY
wait_for s1 "$LATENCY_N"
bench_stop

printf 'fanout: p50_ms=%.1f p99_ms=%.1f deliveries_per_s=%.0f import_to_last_delivery_s=%.2f rows=%d events=%d cores=%d\n' \
  "$(stat s1 p50_ms)" "$(stat s1 p99_ms)" "$per_s" "$import_s" "$ROWS" "$events" "$(nproc)"
