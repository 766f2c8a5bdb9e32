#!/usr/bin/env bash
# The hpvm demo: builds hpvm, compiles examples/counter.c, runs it under `hpvm run`, swaps price() live with the
# version in examples/price_fix.c (watch the output change), lists what is patched, then rolls back.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
hpvm_need
echo "== building hpvm" >&2
hpvm_build
build=examples/build
mkdir -p "$build"
gcc -O2 -o "$build/counter" examples/counter.c
gcc -O2 -c -o "$build/price_fix.o" examples/price_fix.c
bin/hpvm ls >/dev/null 2>&1 || true   # makes bin/hpvm's class-data-sharing archives once, before the show
echo "== starting the worker: bin/hpvm run $build/counter" >&2
bin/hpvm run "$build/counter" &
run=$!
# Ready when its session answers (hpvm run's child is the worker).
for _ in $(seq 100); do
  worker=$(pgrep -P "$run" || true)
  [ -n "$worker" ] && bin/hpvm ls --pid "$worker" >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 1
echo "== swapping price() live: bin/hpvm swap price $build/price_fix.o" >&2
bin/hpvm swap price "$build/price_fix.o"
sleep 2.5
echo "== what is patched: bin/hpvm ls --patched" >&2
bin/hpvm ls --patched
echo "== rolling back: bin/hpvm rollback price" >&2
bin/hpvm rollback price
sleep 1.5
echo "== stopping: kill -TERM <hpvm run> (forwarded to the worker)" >&2
kill -TERM "$run"
status=0
wait "$run" || status=$?
echo "== hpvm run exited with status $status (128+SIGTERM = 143, the worker's own status)" >&2
