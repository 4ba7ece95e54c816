#!/usr/bin/env bash
# Kafka end-to-end benchmark (kept out of CI): starts a tansu broker on loopback, simulates a
# fleet, and measures throughput from a backlog, then alert latency and consumer lag under a
# steady live rate. Method and definitions: scripts/kafka_bench.py.
#
# Usage: scripts/bench_kafka.sh [OUT_DIR] [--rate POINTS_PER_SEC] [--batch-by entity|partition]
#        [--compression lz4|none|snappy|gzip]
# Env:   DURATION (simulated time, default 24h), SERVICES (default 40), PYTHON (default: a venv in
#        target/bench-venv with confluent-kafka, created if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/bench/kafka}
shift || true
DURATION=${DURATION:-24h}
SERVICES=${SERVICES:-40}
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x target/bench-venv/bin/python ]; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install --quiet confluent-kafka
  fi
  PYTHON=target/bench-venv/bin/python
fi
cargo build --release --bin harbinger
# shellcheck source=scripts/broker.sh
. scripts/broker.sh
start_broker
rm -rf "$OUT" && mkdir -p "$OUT"
target/release/harbinger simulate --duration "$DURATION" --services "$SERVICES" --seed 1 --out "$OUT/sim"
"$PYTHON" scripts/kafka_bench.py --brokers "$BROKER_ADDR" --harbinger target/release/harbinger \
  --sim-file "$OUT/sim/metrics.jsonl" --out "$OUT" "$@"
