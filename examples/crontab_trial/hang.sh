#!/bin/sh
# The command trial/hang runs: in an even minute it hangs, ignoring SIGTERM (as a
# process stuck on a dead NFS mount may), so only --kill-after's SIGKILL stops it;
# in an odd minute it prints and takes 3 seconds.
minute=$(date -u +%M)
if [ $((${minute#0} % 2)) -eq 0 ]; then
    trap '' TERM
    echo "trial/hang on $1 hangs (minute $minute)"
    sleep 600
fi
echo "trial/hang on $1 at $(date -u +%T)"
sleep 3
