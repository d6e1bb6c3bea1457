#!/usr/bin/env bash
# Long fuzzing runs: bash scripts/fuzz.sh [seconds] [seed]
#
# Three fuzzers share the time budget (default 600 s), a third each, and each prints how many
# cases it tried; a failure prints the seed of the run that found it and how to reproduce it
# (the API fuzzer also bisects a crash to its call; its stateful mode shrinks a crash or a
# deadlock to the fewest steps and writes them out as a script). With no seed a random one is
# drawn and printed. Runs from tests/ like scripts/test.sh, so that the installed package is
# imported. The test command runs the fuzzers' fast profiles; this is the long one.
set -euo pipefail
cd "$(dirname "$0")/../tests"
seconds=${1:-600}
seed=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
python=${PYTHON:-python}
third=$((seconds / 3))
status=0

echo "== fuzz: ${seconds} s, seed ${seed}"

# --- programs of tensor ops against PyTorch (tests/test_fuzz_programs.py) ----------------------
# The file splits its budget among its tests; timeout is only a safety net (a failure found at
# the end of the budget may take a while to shrink).
echo "== programs against PyTorch (test_fuzz_programs.py): ${third} s"
TAPEGRAD_FUZZ_PROFILE=long TAPEGRAD_FUZZ_SEED="$seed" TAPEGRAD_FUZZ_SECONDS="$third" \
  timeout $((third + 600)) "$python" -m pytest -q -s -p no:cacheprovider test_fuzz_programs.py || status=$?

# --- every public function and method with hostile arguments (tests/test_fuzz_api.py) ---------
# Counted in calls: about 300 a second on one core, so the budget becomes a number of calls.
calls=$((third * 300))
echo "== hostile arguments to the whole API (test_fuzz_api.py): ${calls} calls"
TAPEGRAD_FUZZ_PROFILE=long TAPEGRAD_FUZZ_SEED="$seed" TAPEGRAD_FUZZ_CALLS="$calls" TAPEGRAD_FUZZ_JOBS=1 \
  timeout $((third * 3 + 600)) "$python" -m pytest -q -s -p no:cacheprovider test_fuzz_api.py \
  -k test_fuzz_api_long || status=$?

# --- sequences of calls over shared state: tapes, hooks, checkpoint, threads (stateful mode) ---
# Timed: child processes of 300 sequences until the time is spent; the crashes in KNOWN_CRASHES
# are left out of the draws (TAPEGRAD_FUZZ_AVOID_KNOWN=0 puts them back). Shrinking a failure
# takes up to 4 more minutes.
echo "== sequences over shared state (test_fuzz_api.py, stateful mode): ${third} s"
TAPEGRAD_FUZZ_PROFILE=long TAPEGRAD_FUZZ_SEED="$seed" TAPEGRAD_FUZZ_SECONDS="$third" TAPEGRAD_FUZZ_JOBS=1 \
  timeout $((third + 900)) "$python" -m pytest -q -s -p no:cacheprovider test_fuzz_api.py \
  -k test_stateful_fuzz_long || status=$?

exit $status
