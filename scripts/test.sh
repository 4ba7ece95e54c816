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

step "Tests"
cargo test --all --no-fail-fast

step "All checks passed"
