#!/usr/bin/env bash
# Crash consistency: N rounds (default 100) of one store-changing operation each (pull from a
# local `berth registry serve`, push, load, save, build with RUN and COPY, commit, cp into a
# container, rm -f of a running container, rmi, volume rm, network create/connect/disconnect/
# rm, image prune, builder prune), each interrupted by SIGKILL of the daemon at a random
# moment inside it. After each restart: `berth system check --deep` (offline) clean, every
# image runs, the container that ran still runs, no stray shim, veth or nftables rule, and the
# operation succeeds when run again. Prints: operation | rounds | survived | problems found.
#
# The rounds are tests/integration/crash.rs (CI runs it with two per operation), here with
# release binaries. BERTH_TORTURE_SEED=S repeats a run's kill moments (each run prints its own);
# BERTH_TORTURE_ONLY=WORD keeps the operations whose name holds WORD.
#
# Usage: bash bench/torture.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/torture.sh needs root (it runs real containers)" >&2; exit 1; }
source scripts/deps.sh
berth_deps
cargo build --release -q --workspace --bins
BERTH_TORTURE_ROUNDS=${1:-100} cargo test --release -q --test integration \
  crash::sigkill_inside_each_operation_loses_nothing -- --nocapture --exact 2>&1 |
  grep -vE '^(running [0-9]+ test|test result|\.$|$)'
