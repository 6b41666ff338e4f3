"""Where processcache tells someone: alert channels and per-run pings, each a URL.

Checked when they are given (a job's ``ping=``, ``check --notify``), so a
typo fails the crontab line at once, not the alert months later. Every URL
may hold a token (a healthchecks UUID, a webhook secret, an SMTP password):
`config.mask_url` hides them wherever one is shown.
"""

from urllib.parse import urlsplit

from .errors import RegistryError

#: Per-run ping protocols, by scheme prefix; a plain http(s) URL is healthchecks.io's (or Cronitor's by host).
PING_PREFIXES = ("hc+", "cronitor+")


def check_ping(url: str) -> str:
    """*url* as given, if it can be pinged; RegistryError in one line if not."""
    if not isinstance(url, str):
        raise RegistryError(f"ping={url!r}: give the check's URL, e.g. https://hc-ping.com/<uuid>")
    bare = url
    for prefix in PING_PREFIXES:
        bare = bare.removeprefix(prefix)
    parts = urlsplit(bare)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"ping URL {_shown(url)} is not an http(s) URL with a host: write e.g."
                            " https://hc-ping.com/<uuid> or https://cronitor.link/p/<key>/<job>")
    return url


def mask_channel(url: str) -> str:
    """*url* as processcache shows it: the scheme and host, the rest hidden (a path or a query often is a token).

    An e-mail channel keeps its addresses, which a reader needs, and hides its password.

    >>> mask_channel("https://hc-ping.com/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab/start")
    'https://hc-ping.com/***'
    >>> mask_channel("smtp://cron:s3cret@mail.internal:587?to=ops@example.com")
    'smtp://cron:***@mail.internal:587?to=ops@example.com'
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port}" if parts.port else host
    if parts.scheme in ("smtp", "smtps"):
        user = f"{parts.username}:***@" if parts.password is not None else (f"{parts.username}@" if parts.username
                                                                           else "")
        return f"{parts.scheme}://{user}{where}" + (f"?{parts.query}" if parts.query else "")
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.username else ""
    return f"{parts.scheme}://{where}{hidden}"


def _shown(url: str) -> str:
    return repr(mask_channel(url))
