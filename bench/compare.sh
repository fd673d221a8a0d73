#!/usr/bin/env bash
# Runs one benchmark alternately on two builds, as these noisy machines
# need: OLD NEW, NEW OLD, OLD NEW, ... ROUNDS times each, every run on a
# fresh gateway. Prints each run's line prefixed with `old`/`new`, then one
# `bench-compare` line: for each FIELDS figure, the mean of each side and
# new/old.
#
#   bench/compare.sh OLD_CHECKOUT [ROUNDS] -- bench/tokens.sh
#   FIELDS="rps p99_ms" BACKEND=postgres bench/compare.sh ../old 3 -- bench/tokens.sh
#
# OLD_CHECKOUT is another checkout (a `git worktree` of the previous
# commit); it builds with its own target directory (OLD_TARGET, default
# OLD_CHECKOUT/target) and this checkout with CARGO_TARGET_DIR or
# ./target. The benchmark script is run from each checkout, so each side
# measures its own code with its own script. FIELDS defaults to every
# numeric `name=value` of the first line.
set -euo pipefail
cd "$(dirname "$0")/.."
new_dir=$PWD
old_dir=$(cd "$1" && pwd)
shift
rounds=2
if [ "${1:-}" != "--" ]; then rounds=$1; shift; fi
[ "${1:-}" = "--" ] || { echo "usage: bench/compare.sh OLD_CHECKOUT [ROUNDS] -- BENCH [ARGS...]" >&2; exit 2; }
shift
old_target=${OLD_TARGET:-$old_dir/target}
new_target=${CARGO_TARGET_DIR:-$new_dir/target}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  # ABBA: each side goes first in every other round, so that what a run
  # leaves behind (writeback, a warm cache) falls on both sides alike.
  order="old new"
  if [ $((r % 2)) -eq 0 ]; then order="new old"; fi
  for side in $order; do
    if [ "$side" = old ]; then dir=$old_dir target=$old_target; else dir=$new_dir target=$new_target; fi
    (cd "$dir" && CARGO_TARGET_DIR=$target BIN=$target/release "$@") | while IFS= read -r line; do
      echo "$side $line"
      echo "$side $line" >> "$out"
    done
  done
done
python3 - "$out" "${FIELDS:-}" "$rounds" <<'PY'
import re, sys
lines = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines() if " " in l]
fields = sys.argv[2].split()
def figures(text):
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[0-9.]+)\b", text)}
if not fields and lines:
    fields = list(figures(lines[0][1]))
sums = {"old": {}, "new": {}}
for side, text in lines:
    for k, v in figures(text).items():
        sums[side].setdefault(k, []).append(v)
parts = [f"rounds={sys.argv[3]}"]
for f in fields:
    o, n = sums["old"].get(f), sums["new"].get(f)
    if not o or not n:
        continue
    mo, mn = sum(o) / len(o), sum(n) / len(n)
    ratio = f"{mn / mo:.3f}" if mo else "nan"
    parts.append(f"{f}_old={mo:g} {f}_new={mn:g} {f}_ratio={ratio}")
print("bench-compare " + " ".join(parts))
PY
