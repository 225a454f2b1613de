#!/usr/bin/env bash
# The test command: builds and runs every test tier (pure, layout, root-only integration), then prints one
# closing line "N passed, N failed, N skipped". Root-only tests skip without root; with
# VIRTNET_REQUIRE_ROOT_TESTS=1 (CI) a skipped test is a failure.
#   sudo ./test.sh                 # everything
#   sudo ./test.sh --filter Netlink   # extra arguments go to dotnet test
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
dotnet test tests/Virtnet.Tests/Virtnet.Tests.csproj -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# vstest's closing block: "Total tests: N" then "Passed: N", "Failed: N", "Skipped: N" lines.
summary=$(sed -n '/^Total tests:/,$p' "$log")
num() { echo "$summary" | sed -nE "s/^[[:space:]]*$1:[[:space:]]*([0-9]+).*/\1/p" | tail -1; }
passed=$(num Passed); failed=$(num Failed); skipped=$(num Skipped)
if [ -z "$summary" ]; then
  echo "0 passed, 1 failed (no test summary: the build or the test host failed)"
  exit 1
fi
echo
if [ "${VIRTNET_REQUIRE_ROOT_TESTS:-0}" = "1" ] && [ "${skipped:-0}" != "0" ]; then
  grep -E '^\s+Skipped ' "$log" | head -20
  echo "${skipped} tests were skipped but VIRTNET_REQUIRE_ROOT_TESTS=1 requires every test to run"
  echo "${passed:-0} passed, $(( ${failed:-0} + ${skipped:-0} )) failed"
  exit 1
fi
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
[ "$status" -eq 0 ] && [ "${failed:-0}" = "0" ] && [ "${passed:-0}" != "0" ]
