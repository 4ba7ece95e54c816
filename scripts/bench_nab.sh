#!/usr/bin/env bash
# NAB benchmark: runs `harbinger score` over every file of the NAB development subset in
# ../shared/data/nab (one configuration for all files) and scores the results with
# ../shared/tools/nab_score.py (the NAB scoring rules, standard / low-FP / low-FN profiles).
#
# The configuration is examples/nab.toml with the shipped rules (see its comments: the contextual
# novelty detector beside the robust detector); extra flags replace it (`-- --rules rules` scores
# the shipped default detectors).
#
# Usage: scripts/bench_nab.sh [OUT_DIR] [-- extra harbinger score flags, e.g. --config FILE]
# Env:   SHARED (default ../shared next to the repo), PYTHON (a python with numpy and pandas;
#        default python3), HARBINGER (default target/release/harbinger, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
PYTHON=${PYTHON:-python3}
OUT=${1:-target/bench/nab}
shift || true
[ "${1:-}" = "--" ] && shift
HARBINGER=${HARBINGER:-target/release/harbinger}
[ -x "$HARBINGER" ] || cargo build --release --bin harbinger
DATA="$SHARED/data/nab/data"
if [ $# -eq 0 ]; then
  set -- --config examples/nab.toml
fi
rm -rf "$OUT" && mkdir -p "$OUT"
find "$DATA" -name '*.csv' | sort | while read -r f; do
  rel=${f#"$DATA"/}
  mkdir -p "$OUT/$(dirname "$rel")"
  "$HARBINGER" score --input "$f" --output "$OUT/$rel" "$@"
done
"$PYTHON" "$SHARED/tools/nab_score.py" "$OUT" --detector harbinger --json "$OUT/nab_score.json"
