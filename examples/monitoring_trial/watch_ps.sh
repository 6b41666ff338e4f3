#!/bin/sh
# Every second, append to file $2 the processes whose command line holds the string $1
# (the webhook's token), with the time: how long the token is visible in `ps`.
while :; do
    ps -eo pid,etimes,args | grep -F -- "$1" | grep -v -e grep -e watch_ps | sed "s/^/$(date -u +%T) /" >>"$2"
    sleep 1
done
