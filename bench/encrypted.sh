#!/usr/bin/env bash
# Encrypted-intake benchmark. Three figures, one line:
#  - decryption throughput of age and OpenPGP alone (MB/s, 256 MiB),
#  - a ROWS-row (default 1,000,000) all-new import, plaintext and then
#    `push --encrypt` with age and with OpenPGP, each into a fresh gateway,
#    and the encrypted/plaintext ratios (target <= 1.3),
#  - a file of at least BIG_MIB (default 1024) MiB pushed encrypted (age)
#    into a fresh gateway, with its true size and rows and the gateway's
#    peak RSS (target <= 256 MiB).
#   bench/encrypted.sh
#   ROWS=100000 BIG_MIB=128 bench/encrypted.sh    # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
BIG_MIB=${BIG_MIB:-1024}
./scripts/install-test-tools >/dev/null
cargo build --release -q -p muster -p muster-gen
cargo build --release -q -p muster-intake --example decrypt_bench
source bench/lib.sh
work=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$work"' EXIT

speed=$("$BIN/examples/decrypt_bench" 256 | grep '^decrypt-bench')
age_mb_s=$(echo "$speed" | sed -n 's/.*age_mb_s=\([0-9.]*\).*/\1/p')
pgp_mb_s=$(echo "$speed" | sed -n 's/.*pgp_mb_s=\([0-9.]*\).*/\1/p')

"$BIN/muster-gen" --rows "$ROWS" --seed 42 --out "$work/v1.csv"

# One fresh gateway per run, so each import is all-new.
fresh() {
  bench_stop 2>/dev/null || true
  rm -rf "$work/data"
  bench_start "$work"
  bench_importer
}
fresh
t_plain=$(bench_push "$work/v1.csv" created "$ROWS")
fresh
"$BIN/muster" admin key create --algorithm age >/dev/null
t_age=$(bench_push "$work/v1.csv" created "$ROWS" --encrypt)
fresh
"$BIN/muster" admin key create --algorithm curve25519 >/dev/null
t_pgp=$(bench_push "$work/v1.csv" created "$ROWS" --encrypt)

# The big file: at least BIG_MIB MiB. Rows lengthen as the ids and emails
# grow, so the rows needed are estimated from a sample with a margin, and
# the file is made again with more rows until it is large enough.
big_bytes=$((BIG_MIB * 1024 * 1024))
"$BIN/muster-gen" --rows 100000 --seed 7 --out "$work/big.csv"
big_rows=$((big_bytes * 100000 / $(stat -c %s "$work/big.csv") * 101 / 100 + 1))
while :; do
  "$BIN/muster-gen" --rows "$big_rows" --seed 7 --out "$work/big.csv"
  size=$(stat -c %s "$work/big.csv")
  [ "$size" -ge "$big_bytes" ] && break
  big_rows=$((big_rows * big_bytes / size * 101 / 100 + 1))
done
big_mib=$((size / 1024 / 1024))
fresh
"$BIN/muster" admin key create --algorithm age >/dev/null
t_big=$(bench_push "$work/big.csv" created "$big_rows" --encrypt)
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
bench_stop

python3 - "$ROWS" "$t_plain" "$t_age" "$t_pgp" "$big_mib" "$t_big" "$((rss_kib / 1024))" "$age_mb_s" "$pgp_mb_s" "$big_rows" <<'PY'
import sys
rows, plain, age, pgp, big_mib, big_s, rss, age_mb_s, pgp_mb_s, big_rows = sys.argv[1:]
plain, age, pgp = float(plain), float(age), float(pgp)
print(f"encrypted-bench decrypt_age_mb_s={age_mb_s} decrypt_pgp_mb_s={pgp_mb_s} rows={rows} "
      f"plain_s={plain:.2f} age_s={age:.2f} pgp_s={pgp:.2f} age_ratio={age/plain:.2f} "
      f"pgp_ratio={pgp/plain:.2f} big_mib={big_mib} big_rows={big_rows} big_s={float(big_s):.1f} "
      f"big_peak_rss_mib={rss}")
PY
