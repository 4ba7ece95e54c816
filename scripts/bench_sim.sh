#!/usr/bin/env bash
# Simulator benchmark: for each seed, simulates 24 h of the default fleet, replays it with the
# robust detector alone (examples/robust-z.toml), with the shipped default config (the robust
# detector plus the trend detector on memory gauges) and with every detector on
# (examples/all-detectors.toml), and prints incidents detected and false alerts per simulated
# hour for each (`harbinger evaluate` against the simulator's ground truth).
#
# Usage: scripts/bench_sim.sh [OUT_DIR] [SEED...]      (default seeds: 42 7 11)
# Env:   HARBINGER (default target/release/harbinger, built if missing), DURATION (default 24h),
#        RULES (a rules dir to replay with instead of the shipped defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/bench/sim}
shift || true
SEEDS=${*:-42 7 11}
DURATION=${DURATION:-24h}
HARBINGER=${HARBINGER:-target/release/harbinger}
[ -x "$HARBINGER" ] || cargo build --release --bin harbinger
rm -rf "$OUT" && mkdir -p "$OUT"
rules=()
[ -n "${RULES:-}" ] && rules=(--rules "$RULES")
summary() {
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("%2d/%d incidents detected, %3d false alerts, %.2f per hour, mean delay %.0f s" % (d["detected"], d["incidents"], d["false_alerts"], d["false_alerts_per_hour"], d["mean_delay_secs"]))'
}
for seed in $SEEDS; do
  data="$OUT/seed-$seed"
  "$HARBINGER" simulate --seed "$seed" --duration "$DURATION" --out "$data" >/dev/null 2>&1
  for variant in robust_z default all; do
    config=("${rules[@]}")
    [ "$variant" = robust_z ] && config+=(--config examples/robust-z.toml)
    [ "$variant" = all ] && config+=(--config examples/all-detectors.toml)
    "$HARBINGER" replay "${config[@]}" --input "$data/metrics.jsonl" --out "$data/$variant" \
      >/dev/null 2>&1
    printf 'seed %-4s %-9s ' "$seed" "$variant"
    "$HARBINGER" evaluate --truth "$data/truth.json" --alerts "$data/$variant/alerts.jsonl" \
      2>/dev/null | summary
  done
done
