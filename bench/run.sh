#!/usr/bin/env bash
# hpvm's benchmark: builds what it needs, runs every measurement (native vs hpvm alternately, stalls, swap
# latency, launch, memory, JMH), prints a table and writes bench/RESULTS.md.
#   bench/run.sh           full run (about 13 minutes on 2 cores)
#   bench/run.sh --quick   fewer rounds, shorter windows (about 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
hpvm_need g++:g++   # the C++ worker of the unwind-registration figure
echo "== building hpvm and the bench" >&2
hpvm_build
exec java -jar bench/target/hpvm-bench.jar "$@"
