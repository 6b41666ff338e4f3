#!/bin/sh
# Stop the monitoring trial started in log folder $1: remove root's crontab, stop the two receivers.
# Run it after the last minute's checks ended (20-25 s past the minute).
crontab -r
for name in webhook smtp; do
    kill "$(cat "$1/$name.pid")" && rm "$1/$name.pid"
done
