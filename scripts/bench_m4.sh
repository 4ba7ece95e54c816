#!/usr/bin/env bash
# M4 forecasting benchmark: runs `harbinger forecast` (release build) over the M4 Weekly (359
# series, h = 13) and Hourly (h = 48) training files in ../shared/data/m4 and scores each output
# with ../shared/tools/forecast_eval.py (M4's MASE and sMAPE, 95% interval coverage). Hourly is run
# twice: on H1–H50 (the subset BASELINE.md compares against statsforecast) and on all 414 series.
# Prints one line per run with the scores and the process CPU time (user + system).
#
# Usage: scripts/bench_m4.sh [OUT_DIR] [-- extra harbinger forecast flags, e.g. --threads 1]
# Env:   SHARED (default ../shared next to the repo), PYTHON (a python with numpy; default
#        python3), HARBINGER (default target/release/harbinger, built if missing),
#        HOURLY_ALL=0 to skip the 414-series Hourly run.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
PYTHON=${PYTHON:-python3}
OUT=${1:-target/bench/m4}
shift || true
[ "${1:-}" = "--" ] && shift
HARBINGER=${HARBINGER:-target/release/harbinger}
[ -x "$HARBINGER" ] || cargo build --release --bin harbinger
DATA="$SHARED/data/m4"
rm -rf "$OUT" && mkdir -p "$OUT"

# The H1–H50 input: the long-format rows of those series, header kept.
awk -F, 'NR == 1 || ($1 ~ /^H[0-9]+$/ && substr($1, 2) + 0 <= 50)' \
  "$DATA/hourly_train.csv" >"$OUT/hourly50_train.csv"

# run NAME DATASET INPUT FLAGS...: forecast, time, score, print a summary line.
run() {
  local name=$1 dataset=$2 input=$3
  shift 3
  local TIMEFORMAT='%U %S %R'
  { time "$HARBINGER" forecast --input "$input" --output "$OUT/$name.csv" "$@" \
      2>"$OUT/$name.log"; } 2>"$OUT/$name.time"
  "$PYTHON" "$SHARED/tools/forecast_eval.py" "$OUT/$name.csv" --dataset "$dataset" --json \
    2>"$OUT/$name.eval.log" >"$OUT/$name.json"
  read -r user sys wall <"$OUT/$name.time"
  "$PYTHON" - "$OUT/$name.json" "$name" "$user" "$sys" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, user, sys_t, wall = sys.argv[2], *map(float, sys.argv[3:6])
print(f"{name:10s} series {r['n_scored']:4d}  MASE {r['MASE']:.3f}  sMAPE {r['sMAPE']:.3f}  "
      f"cov95 {r.get('coverage95', float('nan')):.3f}  CPU {user + sys_t:.1f} s  wall {wall:.1f} s")
PY
}

run weekly weekly "$DATA/weekly_train.csv" --horizon 13 --season 1 --extra-seasons 52 "$@"
run hourly50 hourly "$OUT/hourly50_train.csv" --horizon 48 --season 24 --extra-seasons 168 "$@"
if [ "${HOURLY_ALL:-1}" != 0 ]; then
  run hourly hourly "$DATA/hourly_train.csv" --horizon 48 --season 24 --extra-seasons 168 "$@"
fi
