#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Run the erofs_rs selftests (or those named) as root in the test VM and print KTAP:
#   tools/vm/run tools/testing/selftests/erofs_rs/run_tests.sh [TEST...]
# A test fails if it exits non-zero, exceeds its time limit (EROFS_RS_TEST_TIMEOUT, default
# 600 s), or if the kernel reports a problem (oops, BUG, WARNING, KASAN, lockdep, hung task)
# while it runs. The last line is "# N passed, N failed, N skipped".
set -u
dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$dir/../../../.." && pwd)
problems="$repo/tools/vm/kernel-problems"
{ read -r problem_pat; read -r problem_ignore; } < <("$problems" --pattern)
default_timeout=${EROFS_RS_TEST_TIMEOUT:-600}

if [ $# -gt 0 ]; then
  tests=()
  for t in "$@"; do tests+=("$dir/$(basename "$t")"); done
else
  mapfile -t tests < <(ls "$dir"/[0-9][0-9]_*.sh | sort)
fi

echo "TAP version 13"
echo "1..${#tests[@]}"
n=0 pass=0 fails=0 skips=0
for t in "${tests[@]}"; do
  n=$((n + 1))
  name=$(basename "$t" .sh)
  echo "# ---- $name"
  echo "erofs_rs-selftest-begin: $name" > /dev/kmsg
  # A test may ask for more time with a "# TIMEOUT: <seconds>" line. (Read in bash, dates
  # from $EPOCHSECONDS, the kernel log matched by one awk: every exec between tests costs a
  # good fraction of a second under TCG.)
  timeout_s=
  while IFS= read -r line; do
    [[ $line =~ ^#\ TIMEOUT:\ *([0-9]+)$ ]] && { timeout_s=${BASH_REMATCH[1]}; break; }
  done < "$t"
  timeout_s=${timeout_s:-$default_timeout}
  start=$EPOCHSECONDS
  timeout --kill-after=10 "$timeout_s" bash "$t" 2>&1 | sed -u 's/^\([^#]\)/# \1/'
  rc=${PIPESTATUS[0]}
  secs=$(( EPOCHSECONDS - start ))
  # The problem lines of the kernel log since this test's marker (kernel-problems' pattern).
  bad=$(dmesg | awk -v m="erofs_rs-selftest-begin: $name" -v pat="$problem_pat" -v ign="$problem_ignore" '
    index($0, m) { buf = ""; n = 0; next }
    $0 ~ pat && !index($0, ign) && n < 40 { buf = buf $0 "\n"; n++ }
    END { printf "%s", buf }')
  if [ -n "$bad" ]; then
    klog=$(dmesg | awk -v m="erofs_rs-selftest-begin: $name" 'index($0, m) { buf = ""; next } { buf = buf $0 "\n" } END { printf "%s", buf }')
    echo "# kernel reported problems during $name:"
    printf '%s\n' "$klog" | tail -n 80 | sed 's/^/#   /'
    echo "not ok $n $name # kernel problem: $(printf '%s' "$bad" | head -n 1)"
    fails=$((fails + 1))
  elif [ "$rc" = 0 ]; then
    echo "ok $n $name # ${secs}s"
    pass=$((pass + 1))
  elif [ "$rc" = 4 ]; then
    echo "ok $n $name # SKIP"
    skips=$((skips + 1))
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "not ok $n $name # timed out after ${timeout_s}s"
    fails=$((fails + 1))
  else
    echo "not ok $n $name # exit $rc after ${secs}s"
    fails=$((fails + 1))
  fi
done
echo "# $pass passed, $fails failed, $skips skipped"
[ "$fails" = 0 ]
