#!/bin/sh
# Print the trial's crontab for database URL $1, logs in folder $2 (made here):
#   sh make_crontab.sh postgresql://postgres@127.0.0.1/trial /var/tmp/trial | crontab -
# A PYTHONPATH set here is passed on to the jobs (to run a copy of processcache's source).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=$(python3 -c 'import sys; print(sys.executable)')
mkdir -p "$2"
fill() {
    sed -e "s|@PYTHON@|$python|g" -e "s|@DIR@|$here|g" -e "s|@DB@|$1|g" -e "s|@LOG@|$2|g" "$here/crontab.template"
}
if [ -n "${PYTHONPATH:-}" ]; then
    fill "$1" "$2" | sed "/^PROCESSCACHE_DATABASE_URL=/a\\
PYTHONPATH=$PYTHONPATH"
else
    fill "$1" "$2"
fi
