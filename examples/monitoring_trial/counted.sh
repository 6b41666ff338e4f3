#!/bin/sh
# The trial's jobs (docs/trials/monitoring.rst): counts its runs in file $1 and
# fails (exit 1) in runs $2 to $3, succeeds in the others; $4 names it in its output.
#   counted.sh /var/tmp/monitoring_trial/flaky.count 1 3 trial/flaky   # runs 1-3 fail
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$1"
if [ "$n" -ge "$2" ] && [ "$n" -le "$3" ]; then
    echo "$4 run $n of the counter: failing (runs $2 to $3 fail)"
    echo "$4: simulated failure in run $n" >&2
    exit 1
fi
echo "$4 run $n of the counter: fine"
