"""HOST:PORT options of the commands that serve (``serve --bind``, ``metrics --serve``): parsed, checked, listened on.

The same rules for both: an address beyond this machine needs a token, a
port in use or an address not this machine's is one line, and the server
(`processcache.web.http`) runs until SIGTERM, SIGINT or SIGHUP, exit 0.
"""

import errno
import socket
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..web.http import Server, Site


def address(text: str, option: str) -> tuple[socket.AddressFamily, tuple]:
    """HOST:PORT (an IPv6 host in brackets) as the family and address to bind; a usage error otherwise."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT: write it as 127.0.0.1:9464, 0.0.0.0:9464"
                                 " (every interface) or [::1]:9464", param_hint=option)
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise click.BadParameter(f"{host!r} is not an address or a known host name: write it as 127.0.0.1:9464",
                                 param_hint=option) from None
    family, _, _, _, bound = found[0]
    return family, bound


def guarded(text: str, option: str, token: str | None, envvar: str, local: str) -> tuple[socket.AddressFamily, tuple]:
    """*text* as `address`; one beyond loopback without *token* is a usage error that says what to give."""
    from ..web.http import is_loopback

    family, bound = address(text, option)
    if not token and not is_loopback(str(bound[0])):
        raise click.UsageError(f"{option} {text} lets other machines in: give --token (or {envvar}),"
                               f" or listen on {local}")
    return family, bound


def serve(family: socket.AddressFamily, bound: tuple, site: "Site", option: str, say, path: str = "/",
          **options) -> None:
    """Serve *site* on *bound* until a signal (then exit 0), saying where first; a bind failure in one line."""
    server = listening(family, bound, site, option, say, **options)
    say(f"serving {server.url}{path} (SIGTERM or Ctrl-C stops it)")
    server.serve_until_stopped()


def listening(family: socket.AddressFamily, bound: tuple, site: "Site", option: str, say, **options) -> "Server":
    """The server bound to *bound*: a port in use, or an address not this machine's, in one line."""
    from ..web.http import Server, url_of

    shown = url_of(bound).removeprefix("http://")
    try:
        return Server(family, bound, site, errors=say, **options)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise click.BadParameter(f"{shown} is not an address of this machine", param_hint=option) from None
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"{shown} is in use: stop what listens there, or choose another port"
                                       f" with {option} HOST:PORT") from None
        raise click.ClickException(f"cannot listen on {shown}: {exc.strerror}") from None
