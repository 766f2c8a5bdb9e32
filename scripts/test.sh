#!/usr/bin/env bash
# Runs every test: unit tests of the loader and dispatcher-asm, and the runtime tests that compile C workers and
# patches with gcc, run them under hpvm as real processes and swap functions live.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# C++ workers, clang-compiled programs, and the real profiler and debugger that must name patched code
hpvm_need g++:g++ clang:clang perf:linux-perf gdb:gdb
mvn -B -ntp -Dstyle.color=never install "$@"
