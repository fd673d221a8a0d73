#!/usr/bin/env bash
# NATS JetStream publishing (docs/events.md#nats-jetstream): a real
# `muster serve` on loopback with ROWS generated people (default 100,000)
# imported, then, ROUNDS times alternating:
#   1. gateway: a `nats` subscription made --from-beginning on that
#      backlog, until the stream holds BACKLOG (default 20,000) events, the
#      rate taken from the stream's own timestamps of the first and last;
#   2. ceiling: the same number of event-sized messages published by a
#      plain client the way a delivery round sends them (up to WINDOW, 64 as
#      the gateway's, unacknowledged; acknowledgements taken in order), to
#      the same server; and one at a time (each acknowledged before the
#      next), the rate without a window.
# Prints one line: both rates (the medians) and their ratio.
#
#   bench/nats.sh
#   ROWS=20000 BACKLOG=5000 PROFILE=dev bench/nats.sh   # does it work?
# NATS: NATS_URL (default nats://127.0.0.1:4222), JetStream enabled.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
BACKLOG=${BACKLOG:-20000}
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-64}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
source bench/lib.sh
bench_build -p muster-server --example nats_stream
work=$(mktemp -d)
stream=MUSTER_BENCH_$$
trap '"$BIN/examples/nats_stream" delete "$NATS_URL" "$stream" || true; bench_cleanup; rm -rf "$work"' EXIT

"$BIN/muster-gen" --rows "$ROWS" --seed 7 --out "$work/people.csv"
export MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS=true
bench_start "$work"
bench_importer
bench_push "$work/people.csv" created "$ROWS" >/dev/null

gateway=()
ceiling=()
single=()
for r in $(seq "$ROUNDS"); do
  prefix=bench$r
  "$BIN/examples/nats_stream" create "$NATS_URL" "$stream" "$prefix"
  # The stream counts from when the subscription exists.
  "$BIN/examples/nats_stream" wait "$NATS_URL" "$stream" "$BACKLOG" >"$work/took" &
  waiter=$!
  id=$("$BIN/muster" admin subscription create "$NATS_URL" --kind nats \
    --subject-prefix "$prefix" --attributes '*' --from-beginning --json |
    bench_json '["subscription"]["id"]')
  wait "$waiter"
  took=$(cat "$work/took")
  gateway+=("$(python3 -c "print(round($BACKLOG / $took))")")
  "$BIN/muster" admin subscription delete "$id" >/dev/null
  "$BIN/examples/nats_stream" create "$NATS_URL" "$stream" "$prefix"
  ceiling+=("$("$BIN/examples/nats_stream" ceiling "$NATS_URL" "$stream" "$prefix" "$BACKLOG" "$WINDOW")")
  "$BIN/examples/nats_stream" create "$NATS_URL" "$stream" "$prefix"
  single+=("$("$BIN/examples/nats_stream" ceiling "$NATS_URL" "$stream" "$prefix" "$BACKLOG" 1)")
done
bench_stop

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
g=$(median "${gateway[@]}")
c=$(median "${ceiling[@]}")
one=$(median "${single[@]}")
printf 'nats: gateway_events_per_s=%d ceiling_per_s=%d ratio=%.2f unwindowed_per_s=%d window=%d backlog=%d rows=%d rounds=%d cores=%d\n' \
  "$g" "$c" "$(python3 -c "print($g / $c)")" "$one" "$WINDOW" "$BACKLOG" "$ROWS" "$ROUNDS" "$(nproc)"
