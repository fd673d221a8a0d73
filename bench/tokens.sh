#!/usr/bin/env bash
# Token benchmark: OAuth 2.0 client-credentials grants (`ttl` policy) from
# wrk over keep-alive loopback connections against real `muster serve`
# instances, over plain HTTP, over TLS, or both in turn. Bounded: DURATION
# seconds (default 10) per measurement. Prints one line per measurement.
#
#   bench/tokens.sh                               # one gateway, SQLite
#   BACKEND=postgres bench/tokens.sh              # one gateway, PostgreSQL
#   BACKEND=postgres INSTANCES=2 bench/tokens.sh  # two gateways, one database
#   TLS=on bench/tokens.sh                        # over HTTPS
#   TLS=compare bench/tokens.sh                   # plain, TLS, plain, TLS, ...
#   SCRAPE=compare bench/tokens.sh                # /metrics scraped each second, or not
#
# TLS=compare alternates plain and TLS measurements ROUNDS times each
# (default 2; the gateways restart on the same database between them, so
# a drift of the database affects both alike) and ends with a
# `token-bench-tls` line: the mean rate of each and their ratio. The
# certificate is a self-signed P-256 one made for the run (bench_cert).
#
# SCRAPE=compare alternates measurements with and without a scraper
# fetching /metrics once a second (with its token, on the main listener,
# as Prometheus would), ROUNDS times each in ABBA order, and ends with a
# `token-bench-metrics` line: the mean rate of each and their ratio.
#
# With PostgreSQL the run gets its own database (PG_URL, default
# postgres://postgres@127.0.0.1:5432/postgres: a role that may create
# databases), dropped afterwards. With several instances, one wrk per
# instance (CONNECTIONS split between them) runs at the same time; the
# line gives their summed rate and the worst of their p50 and p99.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
BACKEND=${BACKEND:-sqlite}
INSTANCES=${INSTANCES:-1}
TLS=${TLS:-off}
SCRAPE=${SCRAPE:-off}
ROUNDS=${ROUNDS:-2}
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

case $TLS in
  off|on|compare) ;;
  *) echo "TLS must be off, on or compare" >&2; exit 2 ;;
esac
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
[ "$TLS" = off ] || bench_cert "$work/tls"

# The instances share one data directory: the master key and the first
# instance's initial admin token. Each keeps its port across restarts.
export MUSTER_DATA_DIR=$work/data
# /metrics answers to this token on every run (scraped or not).
metrics_token=bench-metrics-token-$$-$RANDOM
echo "$metrics_token" > "$work/metrics-token"
export MUSTER_METRICS__TOKEN_FILE=$work/metrics-token
ports=()
for i in $(seq "$INSTANCES"); do
  ports+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')")
done

# start_all off|on: the instances, plain or over TLS; sets urls.
start_all() {
  local mode=$1 scheme=http i=0 port url up
  local tls_env=()
  if [ "$mode" = on ]; then
    scheme=https
    tls_env=(MUSTER_TLS__CERT_FILE="$work/tls/chain.pem" MUSTER_TLS__KEY_FILE="$work/tls/key.pem")
  fi
  urls=()
  for port in "${ports[@]}"; do
    i=$((i + 1))
    url=$scheme://127.0.0.1:$port
    env "${tls_env[@]}" MUSTER_LISTEN=127.0.0.1:$port MUSTER_LOG=warn "$BIN/muster" serve 2>>"$work/serve.log" &
    pids+=($!)
    up=""
    for _ in $(seq 100); do curl -fsk "$url/healthz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
    [ -n "$up" ] || { echo "gateway $i did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
    urls+=("$url")
  done
}

stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# measure off|on: one wrk per instance for DURATION; prints the line and
# leaves the summed rate in $work/rps.
measure() {
  local mode=$1 i=0 url
  local loads=()
  local threads=$(( INSTANCES > 1 ? 1 : 2 ))
  local per=$(( CONNECTIONS / INSTANCES ))
  rm -f "$work"/wrk.*.txt
  for url in "${urls[@]}"; do
    i=$((i + 1))
    wrk -t"$threads" -c"$per" -d"${DURATION}s" --latency -s bench/token.lua "$url/oauth2/token" > "$work/wrk.$i.txt" &
    loads+=($!)
  done
  # wrk stops by itself after DURATION.
  for p in "${loads[@]}"; do wait "$p"; done
  python3 - "$BACKEND" "$INSTANCES" "$CONNECTIONS" "$DURATION" "$mode" "$work/rps" "$work"/wrk.*.txt <<'PY'
import re, sys
backend, instances, conns, duration, tls, rps_file = sys.argv[1:7]
runs = []
for path in sys.argv[7:]:
    line = next(l for l in open(path) if l.startswith("token-wrk"))
    runs.append(dict(re.findall(r"(\w+)=([0-9.]+)", line)))
total = lambda k: sum(int(r[k]) for r in runs)
worst = lambda k: max(float(r[k]) for r in runs)
rps = sum(float(r['rps']) for r in runs)
open(rps_file, "w").write(f"{rps}\n")
print(f"token-bench backend={backend} instances={instances} connections={conns} "
      f"tls={tls} duration_s={duration} requests={total('requests')} non200={total('non200')} "
      f"rps={rps:.0f} p50_ms={worst('p50_ms'):.2f} p99_ms={worst('p99_ms'):.2f}")
PY
}

# The client is made over plain HTTP: the CLI trusts only public CAs.
start_all off
export MUSTER_URL=${urls[0]}
creds=$("$BIN/muster" admin client create --role importer --json)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client"]["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export BASIC_AUTH=$(printf '%s:%s' "$id" "$secret" | base64 -w0)

# scrape_each_second: fetches /metrics of every instance once a second
# until killed; sets scraper.
scrape_each_second() {
  ( while :; do
      for url in "${urls[@]}"; do
        curl -fs -H "Authorization: Bearer $metrics_token" "$url/metrics" >/dev/null || echo "scrape failed" >&2
      done
      sleep 1
    done ) &
  scraper=$!
}

if [ "$SCRAPE" = compare ]; then
  bare=() scraped=()
  bare_run() { measure off; bare+=("$(cat "$work/rps")"); }
  scraped_run() {
    scrape_each_second; measure off; kill "$scraper"; wait "$scraper" 2>/dev/null || true
    scraped+=("$(cat "$work/rps")")
  }
  # ABBA order: the rate drifts as the token table grows, and alternating
  # which goes first cancels a steady drift.
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then bare_run; scraped_run; else scraped_run; bare_run; fi
  done
  python3 - "$BACKEND" "$INSTANCES" "$CONNECTIONS" "$DURATION" "$ROUNDS" "${bare[*]}" "${scraped[*]}" <<'PY'
import sys
backend, instances, conns, duration, rounds, bare, scraped = sys.argv[1:8]
mean = lambda s: sum(map(float, s.split())) / len(s.split())
b, s = mean(bare), mean(scraped)
print(f"token-bench-metrics backend={backend} instances={instances} connections={conns} "
      f"duration_s={duration} rounds={rounds} unscraped_rps={b:.0f} scraped_rps={s:.0f} "
      f"scraped_over_unscraped={s / b:.3f}")
PY
  exit 0
fi

case $TLS in
  off) measure off ;;
  on) stop_all; start_all on; measure on ;;
  compare)
    plain=() tls=()
    for _ in $(seq "$ROUNDS"); do
      stop_all; start_all off; measure off; plain+=("$(cat "$work/rps")")
      stop_all; start_all on; measure on; tls+=("$(cat "$work/rps")")
    done
    python3 - "$BACKEND" "$INSTANCES" "$CONNECTIONS" "$DURATION" "$ROUNDS" "${plain[*]}" "${tls[*]}" <<'PY'
import sys
backend, instances, conns, duration, rounds, plain, tls = sys.argv[1:8]
mean = lambda s: sum(map(float, s.split())) / len(s.split())
p, t = mean(plain), mean(tls)
print(f"token-bench-tls backend={backend} instances={instances} connections={conns} "
      f"duration_s={duration} rounds={rounds} plain_rps={p:.0f} tls_rps={t:.0f} "
      f"tls_over_plain={t / p:.2f}")
PY
    ;;
esac
