"""What browsers and Prometheus read over HTTP: one server, hardened once, for ``serve`` and ``metrics --serve``.

- `http`: the scaffold both stand on: a thread per client and a bounded
  number of them, a deadline for each whole request, the Host check on a
  loopback bind, the token checked in constant time before a site sees a
  request, security headers, gzip (`gzipped`), one-line errors, and the
  database read on one thread of its own. A `http.Site` says what is served.
- `scrape`: the metrics' site; `dashboard`: the dashboard's.
- `gather` reads what the report's pages show, `pages` turns it into HTML
  with every text from jobs escaped (`parts`: the pieces and the page's
  policy): ``processcache report --html`` and the dashboard alike.

Nothing here is imported by ``processcache run``: cron pays for none of it.
"""
