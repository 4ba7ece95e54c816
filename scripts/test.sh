#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, then all tests.
#
# Usage: scripts/test.sh
# Needs only the Rust toolchain; anything else the tests use is installed by this script.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Lints (cargo clippy -D warnings)"
cargo clippy --all-targets -- -D warnings

step "Alertmanager (for the Alertmanager sink test)"
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends prometheus-alertmanager
fi
HARBINGER_ALERTMANAGER="$(command -v prometheus-alertmanager)"
export HARBINGER_ALERTMANAGER

step "Tests"
cargo test --all --no-fail-fast

step "All checks passed"
