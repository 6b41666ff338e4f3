#!/bin/sh
# Start the monitoring trial (docs/trials/monitoring.rst) in log folder $1 on database URL $2:
# the two receivers (webhook on 127.0.0.1:18931, SMTP on 127.0.0.1:18925), trial/muted's
# first run by hand and its mute (a job must have run to be muted), then root's crontab.
#   PYTHONPATH=/var/tmp/monitoring_trial/src sh start.sh /var/tmp/monitoring_trial/run postgresql://...
# stop.sh undoes it. cron must be running (/usr/sbin/cron).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
log=$1
export PROCESSCACHE_DATABASE_URL=$2
hook=http://127.0.0.1:18931/hooks/trial/tok-5e1f9a7c2b8d4e60
smtp='smtp://127.0.0.1:18925?to=ops@example.org&from=cron@example.org'
mkdir -p "$log/check"
cd "$log"  # not the source tree: python puts the current folder first on its path
nohup python3 "$here/webhook_receiver.py" 18931 "$log/webhook.jsonl" >"$log/webhook.log" 2>&1 &
echo $! >"$log/webhook.pid"
nohup python3 "$here/smtp_receiver.py" 18925 "$log/mailbox.txt" >"$log/smtp.log" 2>&1 &
echo $! >"$log/smtp.pid"
python3 -m processcache exec -q --machine web1 --job trial/muted -- "$here/counted.sh" "$log/muted.count" 3 5 trial/muted
python3 -m processcache jobs mute trial/muted --for 2h
python3 "$here/make_crontab.py" "$2" "$log" "$hook" "$smtp" | crontab -
echo "crontab installed at $(date -u +%T); it starts at the next minute"
