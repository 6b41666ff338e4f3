"""Where processcache tells someone: alert channels and per-run pings, each a URL.

Channels (``check --notify URL``):

- ``https://...`` or ``http://...``: a webhook. The alert is POSTed as JSON
  (`alerts.message` documents the body); any 2xx answer is a delivery.
- ``smtp://[user[:password]@]host[:port]?to=a@x.org,b@x.org[&from=...][&starttls=1]``
  (``smtps://`` for SSL from the start): an e-mail, with the standard
  library's smtplib. Port 25 (465 for smtps) unless given.

Every channel waits at most ``?timeout=`` seconds (default
`DEFAULT_TIMEOUT`) for an answer. Checked when given, so a typo fails the
crontab line at once, not the alert months later. A URL may hold a token (a
webhook's secret path, a healthchecks UUID, an SMTP password):
`mask_channel` hides it wherever one is shown, and the database never
holds it: a queued message names its channel by a fingerprint and the masked
URL (`stored_channel`), so whoever may read the database (a read-only user
for a dashboard) reads no token, and a checker sends it only to a URL it
was given itself whose fingerprint matches (`channel_of`): never to a URL
read from the database.
"""

import functools
import hashlib
import json
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, RegistryError
from ..masking import mask_channel

#: Seconds a channel or a ping may take to answer.
DEFAULT_TIMEOUT = 5.0
#: Per-run ping protocols, by scheme prefix; a plain http(s) URL is healthchecks.io's (or Cronitor's by host).
PING_PREFIXES = ("hc+", "cronitor+")
CHANNEL_SCHEMES = ("https", "http", "smtp", "smtps")


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


def check_channel(url: str) -> str:
    """*url* as given, if processcache can send to it; ConfigError in one line if not."""
    parts = urlsplit(url)
    if parts.scheme not in CHANNEL_SCHEMES:
        raise ConfigError(f"unknown channel scheme {parts.scheme or url!r} in {_shown(url)}: use https://... (a"
                          " webhook) or smtp://host?to=you@example.org (e-mail)")
    if not parts.hostname:
        raise ConfigError(f"the channel {_shown(url)} has no host: write e.g. https://hooks.example.org/...")
    if parts.scheme.startswith("smtp") and not _options(url).get("to"):
        raise ConfigError(f"the e-mail channel {_shown(url)} says no recipient: add ?to=you@example.org")
    _timeout(url)
    return url


def send(url: str, subject: str, body: dict) -> None:
    """Deliver one alert (*body*, the JSON `alerts.message` makes) to the channel *url*; raise if it was not."""
    if urlsplit(url).scheme.startswith("smtp"):
        _mail(url, subject, body)
    else:
        post(url, json.dumps(body, ensure_ascii=False).encode(), "application/json", _timeout(url))


def post(url: str, data: bytes | None, content_type: str, timeout: float) -> None:
    """POST *data* (GET when None) to *url*; raise ConnectionError naming the masked URL unless it answers 2xx."""
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    from .. import __version__

    request = Request(url, data=data, headers={"Content-Type": content_type,
                                               "User-Agent": f"processcache/{__version__}"})
    try:
        with urlopen(request, timeout=timeout) as answer:
            answer.read(1024)
    except HTTPError as exc:
        raise ConnectionError(f"{mask_channel(url)} answered HTTP {exc.code}") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"{mask_channel(url)} did not answer: {reason}") from None


def _mail(url: str, subject: str, body: dict) -> None:
    import smtplib

    parts, options = urlsplit(url), _options(url)
    message = EmailMessage()
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=socket.getfqdn())
    message["Subject"] = subject
    message["From"] = options.get("from") or f"processcache@{socket.getfqdn()}"
    message["To"] = options["to"]
    message.set_content(_mail_text(body))
    secure = parts.scheme == "smtps"
    smtp_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    try:
        with smtp_class(parts.hostname or "", parts.port or (465 if secure else 25), timeout=_timeout(url)) as smtp:
            if options.get("starttls") in ("1", "true", "yes"):
                smtp.starttls()
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise ConnectionError(f"{mask_channel(url)} did not take the mail: {exc}") from None


def _mail_text(body: dict) -> str:
    lines = [body["text"], ""]
    lines += [f"{name.replace('_', ' ')}: {body[name]}" for name in
              ("job", "kind" if body["event"] == "failing" else "was", "failures", "run_id", "machine", "status",
               "started_at", "error") if body.get(name) is not None]
    if body.get("log_tail"):
        lines += ["", "Its last logs:", *(f"  {line}" for line in body["log_tail"])]
    return "\n".join(lines) + "\n"


def _options(url: str) -> dict[str, str]:
    return {name: ",".join(values) for name, values in parse_qs(urlsplit(url).query).items()}


def _timeout(url: str) -> float:
    given = _options(url).get("timeout")
    if given is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(given)
    except ValueError:
        seconds = 0
    if not 0 < seconds <= 300:
        raise ConfigError(f"timeout={given!r} in {_shown(url)}: give seconds, more than 0 and at most 300")
    return seconds


#: How a stored channel begins: a fingerprint of its URL, then after a space the URL masked.
STORED_PREFIX = "channel-pbkdf2:"


@functools.lru_cache(maxsize=64)
def fingerprint(url: str) -> str:
    """A fingerprint that matches *url* and gives nothing of it away: PBKDF2-SHA256, 100,000 rounds (26 ms),
    so a weak SMTP password in it cannot be guessed from a copy of the table at any useful speed."""
    return hashlib.pbkdf2_hmac("sha256", url.encode(), b"processcache alert channel", 100_000).hex()


def stored_channel(url: str) -> str:
    """How a queued message names its channel in the database: never the URL itself, which may hold a token."""
    return f"{STORED_PREFIX}{fingerprint(url)} {mask_channel(url)}"


def channel_of(stored: str, urls: dict[str, str]) -> str | None:
    """The URL to send a queued message to: of *urls* (by `fingerprint`), the one it was queued for; None when
    this checker was given no such channel.

    A message an older release queued names its URL itself, and goes out
    only if this checker was given that URL too: a checker never sends to
    a URL it read from the database, which whoever may write there could
    point at any host of the checker's network.
    """
    if stored.startswith(STORED_PREFIX):
        return urls.get(stored.partition(" ")[0].removeprefix(STORED_PREFIX))
    return urls.get(fingerprint(stored))  # an older release's: the URL itself


def shown_channel(stored: str) -> str:
    """A stored channel as processcache shows it: the URL masked."""
    return stored.partition(" ")[2] if stored.startswith(STORED_PREFIX) else mask_channel(stored)


def _shown(url: str) -> str:
    return repr(mask_channel(url))
