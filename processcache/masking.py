"""Every secret hidden where a person or a log may see it: database URLs and alert channel URLs alike.

A database URL's password (in its user part, or as any option the URL
parser reads for one: ``password``, ``passwd``, ``pwd``, ``sslpassword``)
is ``***`` in every message, log and error (`mask_url`, `masked_text`; a
``DatabaseConfig`` masks every copy of its password in a text); an alert
channel shows its scheme and host only, since its path or query is often
its token (`mask_channel`).
"""

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

#: What a secret is shown as.
MASK = "***"
#: A password given as an option (``?password=``, ``&passwd=``, ``sslpassword=``, ``pwd=``): its
#: value runs to the next ``&name=``, so an unencoded ``&``, ``#`` or ``?`` in it stays masked.
PASSWORD_OPTION = re.compile(r"([?&][^=&]*(?:pass|pwd)[^=&]*=)(?:[^&]|&(?![\w.-]+=))*", re.IGNORECASE)


def mask_url(parts: SplitResult) -> str:
    """The URL of *parts* as shown: its password and any password option's value as ``***``."""
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username}:{MASK}@{parts.netloc.rpartition('@')[2]}")
    return mask_options(parts.geturl())


def mask_options(text: str) -> str:
    """*text* with the value of every password option (``?password=``, ``&pwd=``...) as ``***``."""
    return PASSWORD_OPTION.sub(lambda found: found.group(1) + MASK, text)


def masked_text(url: object, schemes: "Iterable[str]") -> str:
    """Mask what may be a password in a URL's text, whether it parses or not.

    A ``?password=`` option's value is masked first. The user part runs from
    after a known scheme's ``://`` (else from the start: without it nothing
    says where a scheme ends) to the *last* ``@``, so that a password holding
    an unencoded ``/``, ``?``, ``#``, ``@`` or even ``://``, where a URL
    parser splits it, is masked whole. *schemes* are those a URL of its kind may
    have (``postgresql``, ``mysql``...). From the user part's first ``:`` on
    it is the password: ``postgresql:/cron:pw@db`` is shown as
    ``postgresql:***@db``.
    """
    text = mask_options(str(url))
    known = re.match(rf"(?:{'|'.join(schemes)})(?:\+[\w.-]*)?://", text, re.IGNORECASE)
    start = known.end() if known else 0
    at = text.rfind("@")
    colon = text.find(":", start, max(at, start))
    if colon >= 0:
        text = f"{text[:colon + 1]}{MASK}{text[at:]}"
    return text


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
    where = f"{host}:{parts.port}" if _port(parts) else host
    if parts.scheme in ("smtp", "smtps"):
        user = f"{parts.username}:***@" if parts.password is not None else (f"{parts.username}@" if parts.username
                                                                           else "")
        return f"{parts.scheme}://{user}{where}" + (f"?{parts.query}" if parts.query else "")
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.username else ""
    return f"{parts.scheme}://{where}{hidden}"


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # a port that is not a number: shown as the host alone
        return None
