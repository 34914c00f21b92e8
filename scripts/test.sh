#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real containers, so
# run it as root). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
# A build from nothing gains nothing from the incremental cache, which was a third of the
# 8.3 GB this run left on disk (1.9 GB of 5.3 beside the tests, 0.8 of 3.0 beside the fuzzers);
# a CI run once failed with its disk full. Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
berth_deps
# Docker Compose for the interop tests (only the tests need it).
compose_binary
# Rootless berth's tests run as an unprivileged user with subordinate ids (made when missing),
# with pasta and newuidmap installed and /dev/net/tun usable by users.
if [ "$(id -u)" = 0 ]; then
  bash scripts/rootless-setup.sh berth-rootless
fi

# Every fuzz target for 20 s (bench/fuzz.sh: the nightly toolchain, cargo-fuzz; an
# unoptimized build, quicker to make), beside the rest at the lowest priority, on
# the CPU it leaves idle; waited for at the end. In a session of its own, so that a failure
# of the rest stops all of it.
fuzz_log=$(mktemp /tmp/berth-ci-fuzz-XXXXXX)
FUZZ_PROFILE=dev setsid nice -n 19 bash bench/fuzz.sh 20 >"$fuzz_log" 2>&1 &
fuzz_pid=$!
trap 'kill -- -"$fuzz_pid" 2>/dev/null || true; rm -f "$fuzz_log"' EXIT

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Unit tests, each crate's tests/ (on berth-testutil), and the whole-system tests: one binary,
# tests/integration, a module per area (`cargo test --test integration network::` runs one).
# A hung test fails the run instead of outliving it (CI allows 90 minutes in all).
# Three tests at a time on two cores: the whole-system tests mostly wait on containers and
# daemons (548 s with two, 504 s with three on this machine).
RUST_TEST_THREADS=${RUST_TEST_THREADS:-3} timeout --kill-after=30 3000 cargo test --workspace
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
echo "fuzzing (bench/fuzz.sh 20):"
cat "$fuzz_log"
exit "$fuzz_status"
