"""Print the monitoring trial's crontab (docs/trials/monitoring.rst), the template filled in.

    python make_crontab.py DATABASE_URL LOG_DIR WEBHOOK_URL SMTP_URL | crontab -

The Python that runs this runs the jobs (it must have processcache); a
PYTHONPATH set here is passed on to them, to run a frozen copy of the
source. LOG_DIR and LOG_DIR/check are made here.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    database, log, hook, smtp = sys.argv[1:5]
    here = Path(__file__).resolve().parent
    (Path(log) / "check").mkdir(parents=True, exist_ok=True)
    values = {"@PYTHON@": sys.executable, "@DIR@": str(here), "@DB@": database, "@LOG@": log,
              "@HOOK@": hook, "@SMTP@": smtp}
    text = (here / "crontab.template").read_text()
    for name, value in values.items():
        text = text.replace(name, value)
    if os.environ.get("PYTHONPATH"):
        text = text.replace(f"PROCESSCACHE_DATABASE_URL={database}\n",
                            f"PROCESSCACHE_DATABASE_URL={database}\nPYTHONPATH={os.environ['PYTHONPATH']}\n")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
