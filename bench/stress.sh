#!/usr/bin/env bash
# Stress benchmark: a legitimate client's token rate and a `muster push`
# against a real release `muster serve` on loopback, first alone, then while
# an attacker (bench/stress_attack.py) holds 2,000 slow-header connections
# and 500 slow uploads open for ATTACK_SECONDS (default 60), re-opening the
# ones the gateway closes. Loopback only, bounded, stops by itself; what it
# starts it stops by PID. Prints one line:
#   the token rate under attack over the rate without (goal >= 0.9), the
#   gateway's peak RSS and threads (/proc/PID/status), /healthz p99 during
#   the attack (goal < 50 ms) and whether the push under attack succeeded.
#
#   bench/stress.sh
#   ROWS=20000 SLOW_HEADERS=500 SLOW_UPLOADS=100 bench/stress.sh   # lighter
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
SLOW_HEADERS=${SLOW_HEADERS:-2000}
SLOW_UPLOADS=${SLOW_UPLOADS:-500}
ATTACK_SECONDS=${ATTACK_SECONDS:-60}
TOKEN_SECONDS=${TOKEN_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-8}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# The gateway and the attacker each hold thousands of sockets.
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p muster -p muster-gen
source bench/lib.sh
work=$(mktemp -d)
helpers=()
stop_helpers() {
  for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
  helpers=()
}
trap 'stop_helpers; bench_cleanup; rm -rf "$work"' EXIT

"$BIN/muster-gen" --rows "$ROWS" --seed 7 --out "$work/people.csv"
sync
MUSTER_LOG=${MUSTER_LOG:-warn} bench_start "$work"
port=${MUSTER_URL##*:}
bench_importer
# The legitimate client: wrk with its Basic credentials.
export BASIC_AUTH=$(printf '%s:%s' "$MUSTER_CLIENT_ID" "$MUSTER_CLIENT_SECRET" | base64 -w0)
# CPU seconds (user + system) a process has used so far.
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
token_rate() {
  wrk -t1 -c"$CONNECTIONS" -d"${TOKEN_SECONDS}s" -s bench/token.lua "$MUSTER_URL/oauth2/token" \
    | awk '/^token-wrk/ { for (i = 1; i <= NF; i++) if ($i ~ /^rps=/) { sub("rps=", "", $i); print $i } }'
}
# The attacker holds a credential of its own (an importer's bearer token).
attacker=$("$BIN/muster" admin client create --role importer --json)
att_id=$(echo "$attacker" | bench_json '["client"]["client_id"]')
att_secret=$(echo "$attacker" | bench_json '["client_secret"]')
export STRESS_TOKEN=$(curl -fs -u "$att_id:$att_secret" -d grant_type=client_credentials \
  "$MUSTER_URL/oauth2/token" | bench_json '["access_token"]')

# Without the attack; the gateway's CPU per thousand tokens beside it.
g0=$(cpu_s "$pid")
rate_base=$(token_rate)
g1=$(cpu_s "$pid")
push_base=$(bench_push "$work/people.csv" created "$ROWS")

# Under attack: the attacker, the /healthz probe and the /proc sampler all
# stop by themselves after ATTACK_SECONDS.
python3 bench/stress_attack.py attack "$port" "$ATTACK_SECONDS" "$SLOW_HEADERS" "$SLOW_UPLOADS" \
  > "$work/attack.txt" 2>&1 &
helpers+=($!); attack_pid=$!
python3 bench/stress_attack.py probe "$port" "$ATTACK_SECONDS" > "$work/probe.txt" 2>&1 &
helpers+=($!); probe_pid=$!
(
  end=$((SECONDS + ATTACK_SECONDS + 5))
  while [ "$SECONDS" -lt "$end" ] && [ -r "/proc/$pid/status" ]; do
    awk '/^VmRSS/ {r=$2} /^Threads/ {t=$2} END {print r, t}' "/proc/$pid/status"
    sleep 0.5
  done
) > "$work/proc.txt" &
helpers+=($!); sampler_pid=$!
# Let the attacker's connections arrive before measuring.
sleep 10
g2=$(cpu_s "$pid"); a2=$(cpu_s "$attack_pid")
rate_attack=$(token_rate)
g3=$(cpu_s "$pid"); a3=$(cpu_s "$attack_pid")
if push_attack=$(bench_push "$work/people.csv" unchanged "$ROWS" 2>"$work/push.err"); then
  push_ok=yes
else
  push_ok=no; push_attack=-1
fi
wait "$attack_pid" "$probe_pid" "$sampler_pid" || true
helpers=()
rss_peak_kib=$(awk '$1 > m {m = $1} END {print m + 0}' "$work/proc.txt")
threads_peak=$(awk '$2 > m {m = $2} END {print m + 0}' "$work/proc.txt")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
bench_stop
cat "$work/attack.txt" >&2
cat "$work/probe.txt" >&2
[ "$push_ok" = yes ] || cat "$work/push.err" >&2
p99=$(grep -o 'p99_ms=[-0-9.]*' "$work/probe.txt" | cut -d= -f2)
fails=$(grep -o 'failures=[0-9]*' "$work/probe.txt" | cut -d= -f2)
python3 - "$rate_base" "$rate_attack" "$rss_peak_kib" "$hwm_kib" "$threads_peak" "${p99:--1}" \
  "${fails:--1}" "$push_ok" "$push_base" "$push_attack" "$SLOW_HEADERS" "$SLOW_UPLOADS" \
  "$ATTACK_SECONDS" "$g0" "$g1" "$g2" "$g3" "$a2" "$a3" "$TOKEN_SECONDS" <<'PY'
import sys
(base, attack, rss, hwm, threads, p99, fails, ok, push_base, push_attack,
 headers, uploads, secs, g0, g1, g2, g3, a2, a3, tsecs) = sys.argv[1:]
ratio = float(attack) / float(base) if float(base) > 0 else 0
# Gateway CPU ms per thousand tokens, without and under attack (what the
# attack costs the gateway), and the attacker's own share of the machine's
# two cores while the rate under attack was measured (what it takes from
# everyone on this machine, the gateway and the load generator included).
per_k = lambda g, a, rate: 1e6 * (float(g) - float(a)) / (float(rate) * float(tsecs)) if float(rate) > 0 else 0
cpu_base, cpu_attack = per_k(g1, g0, base), per_k(g3, g2, attack)
attacker_share = (float(a3) - float(a2)) / (2 * float(tsecs))
print(f"stress-bench slow_headers={headers} slow_uploads={uploads} attack_s={secs} "
      f"token_rps_base={float(base):.0f} token_rps_attack={float(attack):.0f} "
      f"token_ratio={ratio:.2f} peak_rss_mib={int(rss) / 1024:.0f} "
      f"rss_hwm_mib={int(hwm) / 1024:.0f} peak_threads={threads} "
      f"healthz_p99_ms={float(p99):.1f} healthz_failures={fails} push_ok={ok} "
      f"push_s_base={float(push_base):.2f} push_s_attack={float(push_attack):.2f} "
      f"gateway_cpu_ms_per_1k_tokens_base={cpu_base:.0f} gateway_cpu_ms_per_1k_tokens_attack={cpu_attack:.0f} "
      f"attacker_cpu_share={attacker_share:.2f}")
PY
