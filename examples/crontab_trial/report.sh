#!/bin/sh
# The command trial/report runs: it prints who ran it, and takes 5 seconds.
echo "trial/report on $1 at $(date -u +%T)"
sleep 5
