"""What browsers and Prometheus read over HTTP: one server, hardened once, for ``serve`` and ``metrics --serve``.

`http` is the scaffold both stand on (issue 26): a thread per client and
a bounded number of them, a deadline for each whole request, the Host
check on a loopback bind, the token checked in constant time before a
site sees a request, security headers, gzip, one-line errors, and the
database read on one thread of its own. A `http.Site` says what is
served: `scrape` the metrics, ``processcache.report.server`` the
dashboard. Nothing here is imported by ``processcache run``.
"""
