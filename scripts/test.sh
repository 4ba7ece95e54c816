#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, then all tests — the Kafka ones against a real
# Kafka-protocol broker (tansu) that this script installs if missing, starts on a free loopback
# port with in-memory storage, and stops at the end.
#
# Usage: scripts/test.sh
# Needs only the Rust toolchain (and a C compiler, for librdkafka); everything else is installed
# here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --features harbinger/kafka-tests -- -D warnings

step "Alertmanager (for the Alertmanager sink test)"
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update && $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends prometheus-alertmanager ||
    echo "WARNING: could not install prometheus-alertmanager; its test will report SKIPPED."
fi
if command -v prometheus-alertmanager >/dev/null 2>&1; then
  HARBINGER_ALERTMANAGER="$(command -v prometheus-alertmanager)"
  export HARBINGER_ALERTMANAGER
fi

step "Test broker (tansu 0.6.0, memory storage)"
# shellcheck source=scripts/broker.sh
. scripts/broker.sh
start_broker

step "Tests (unit, integration, Kafka)"
HARBINGER_TEST_BROKERS="$BROKER_ADDR" HARBINGER_BROKER_PID="$BROKER_PID" \
  cargo test --all --features kafka-tests --no-fail-fast

step "All checks passed"
