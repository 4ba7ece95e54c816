#!/usr/bin/env bash
# ASD benchmark (12 application servers, 19 metrics each): runs `harbinger score --train` per
# machine (the train split streams through the detectors first, unscored), then scores the
# per-row anomaly scores of the test split against the labels with ../shared/tools/mv_eval.py
# (ROC-AUC, PR-AUC, best F1 without and with point adjustment; PR-AUC and F1 without point
# adjustment are the figures that count).
#
# ASD files are headerless wide CSVs of normalised values without a timestamp: `score` names the
# columns c1..c19 and gives row i the time i × --row-step (5 minutes, ASD's sampling interval).
#
# The configuration is examples/asd.toml with the rules override examples/asd-rules/ (see their
# comments: entity-level nearest-neighbour novelty, no damping); extra flags replace them.
#
# Usage: scripts/bench_asd.sh [OUT_DIR] [-- extra harbinger score flags]
# Env:   SHARED (default ../shared next to the repo), PYTHON (a python with numpy and
#        scikit-learn; default python3), HARBINGER (default target/release/harbinger).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
PYTHON=${PYTHON:-python3}
OUT=${1:-target/bench/asd}
shift || true
[ "${1:-}" = "--" ] && shift
HARBINGER=${HARBINGER:-target/release/harbinger}
[ -x "$HARBINGER" ] || cargo build --release --bin harbinger
DATA="$SHARED/data/asd"
rm -rf "$OUT" && mkdir -p "$OUT/scores"
if [ $# -eq 0 ]; then
  set -- --config examples/asd.toml --rules examples/asd-rules
fi
for f in "$DATA"/test/*.txt; do
  m=$(basename "$f" .txt)
  "$HARBINGER" score --train "$DATA/train/$m.txt" --input "$f" --output "$OUT/$m.csv" \
    --row-step 5m "$@"
  # The score is the last column; drop the header.
  tail -n +2 "$OUT/$m.csv" | awk -F, '{print $NF}' > "$OUT/scores/$m.txt"
done
"$PYTHON" "$SHARED/tools/mv_eval.py" "$OUT/scores" --labels "$DATA/test_label" \
  --json "$OUT/mv_eval.json"
