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
  $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends prometheus-alertmanager
fi
HARBINGER_ALERTMANAGER="$(command -v prometheus-alertmanager)"
export HARBINGER_ALERTMANAGER


step "Test broker (tansu 0.6.0, memory storage)"
TANSU_VERSION=0.6.0
if ! command -v tansu >/dev/null || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "Installing tansu $TANSU_VERSION (takes about ten minutes, once)..."
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broker_log=$(mktemp)
tansu broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$broker_log" 2>&1 &
broker_pid=$!
cleanup() {
  kill -CONT "$broker_pid" 2>/dev/null || true
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  rm -f "$broker_log"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "The test broker did not start:"; cat "$broker_log"; exit 1
fi
echo "tansu listening on 127.0.0.1:$port (pid $broker_pid)"

step "Tests (unit, integration, Kafka)"
HARBINGER_TEST_BROKERS="127.0.0.1:$port" HARBINGER_BROKER_PID="$broker_pid" \
  cargo test --all --features kafka-tests --no-fail-fast

step "All checks passed"
