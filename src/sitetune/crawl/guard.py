"""Which URLs and addresses a fetch may reach: every hop of every request is checked here.

A crawl (and ``sitetune sectionize URL``) fetches what pages and their redirects point at, so without a
check a page could make it read a service that only this machine can reach (an admin port on 127.0.0.1,
the cloud metadata service at 169.254.169.254) and copy the answer into a corpus or onto the terminal.
:class:`FetchGuard` is the one policy for that, applied at two points:

- :meth:`FetchGuard.check` runs on the first URL and on every redirect target before any request (see
  :func:`sitetune.crawl.fetch.fetch`): the scheme must be http or https, the URL must lie on the start URL's
  origin (scheme, host and port; the same :func:`~sitetune.crawl.urls.in_prefix` test the crawl's prefix
  uses), and a host written as an address must be a public one;
- :meth:`FetchGuard.check_addresses` runs when a connection is opened: the client from
  :func:`sitetune.crawl.fetch.make_client` opens every connection through
  :class:`~sitetune.crawl.transport.GuardedBackend`, which resolves the host name itself, refuses it if
  any of its addresses is not public, and connects to the address it checked, so a name that resolves to
  a public address for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere.

The one exception is the host the user named: a start URL whose host is itself a loopback or private
address (``http://127.0.0.1:8000/``, a local mirror; ``localhost``) may be fetched, at exactly that host and
port. ``CrawlConfig.allow_private_addresses`` lifts the address check altogether (an intranet site known by
name); the origin check stays.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sitetune.crawl.urls import in_prefix

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Metadata services of cloud providers: where a server's credentials are one GET away. Most are link-local
# or private (and refused as such); listed so the refusal says what they are. 168.63.129.16 is Azure's
# platform address, inside a public range.
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"))
_LOCALHOST = "localhost"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A URL or address the guard will not fetch; ``reason`` is a slug for the crawl report.

    :func:`sitetune.crawl.fetch.fetch` turns it into a ``FetchError`` with the same reason and detail.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _address(host: str) -> Address | None:
    """``host`` as an IP address (IPv6 brackets and zone id dropped), or None when it is a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def non_public(address: str) -> str | None:
    """What kind of non-public address ``address`` is ("loopback", "private", ...), or None if public.

    An IPv6 address that embeds an IPv4 one (IPv4-mapped ``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``) is
    judged by the IPv4 address too, since that is where the packets can end up.
    """
    ip = _address(address)
    if ip is None:
        return "not an IP address"
    candidates: list[Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        # The embedded address first: it says more ("loopback") than the IPv6 block it sits in ("reserved").
        candidates += [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    candidates.append(ip)
    for x in candidates:
        if x in _METADATA:
            return "cloud metadata"
        for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
            if getattr(x, f"is_{kind}"):
                return kind.replace("_", "-")
        if not x.is_global:
            return "not globally routable"
    return None


def _origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; the host lower-case without IPv6 brackets."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class FetchGuard:
    """Where one crawl (or one page fetch) may go; build it with :meth:`for_start`.

    Attributes:
        origins: ``scheme://host[:port]`` origins every URL must lie on.
        named: ``(host, port)`` pairs the user named that are exempt from the address check.
        allow_private: Skip the address check everywhere (the origin check still applies).
    """

    origins: frozenset[str]
    named: frozenset[tuple[str, int]] = frozenset()
    allow_private: bool = False

    @classmethod
    def for_start(cls, start_url: str, *, allow_private: bool = False) -> FetchGuard:
        """The guard of a fetch that starts at the normalised ``start_url``: its origin only.

        A start host that is itself a non-public address or ``localhost`` is what the user asked for, so
        that host and port are exempt from the address check.
        """
        parts = urlsplit(start_url)
        scheme, host, port = _origin(start_url)
        named = host == _LOCALHOST or host.endswith("." + _LOCALHOST) or (
            _address(host) is not None and non_public(host) is not None)
        return cls(frozenset({f"{scheme}://{parts.netloc.lower()}"}),
                   frozenset({(host, port)}) if named else frozenset(), allow_private)

    def exempt(self, host: str, port: int) -> bool:
        """Whether connections to ``host``:``port`` skip the address check (named by the user, or allowed)."""
        return self.allow_private or (host.lower().strip("[]"), port) in self.named

    def check(self, url: str, *, redirect: bool = False) -> None:
        """Refuse ``url`` unless it may be requested; called before every request, redirects included.

        It must be http(s), lie on an allowed origin, and not have a host written as a non-public address
        the user did not name.

        Args:
            url: A normalised URL (:func:`~sitetune.crawl.urls.normalize_url`).
            redirect: Whether ``url`` is a redirect target (the message says so).

        Raises:
            Refused: ``bad-scheme``, ``off-site`` or ``private-address``, naming ``url``.
        """
        what = f"redirect to {url}" if redirect else url
        scheme, host, port = _origin(url)
        if scheme not in _DEFAULT_PORTS:
            raise Refused("bad-scheme", f"{what} refused: only http and https are fetched")
        if not any(in_prefix(url, origin + "/") for origin in self.origins):
            allowed = ", ".join(sorted(self.origins))
            raise Refused("off-site", f"{what} refused: another host or port than {allowed}")
        if _address(host) is not None and not self.exempt(host, port):
            kind = non_public(host)
            if kind is not None:
                raise Refused("private-address", f"{what} refused: {host} is a {kind} address")

    def check_addresses(self, host: str, port: int, addresses: Iterable[str]) -> None:
        """Refuse ``host`` unless every address it resolved to is public (or the host is exempt).

        Any non-public answer refuses the name, so the outcome cannot hang on which address comes first.

        Raises:
            Refused: ``private-address``, naming the host, the address and its kind.
        """
        if self.exempt(host, port):
            return
        for address in addresses:
            kind = non_public(address)
            if kind is not None:
                raise Refused("private-address", f"{host} resolves to {address}, a {kind} address: only public "
                              "addresses are fetched unless the start URL names the address itself or private "
                              "addresses are allowed (--allow-private-addresses)")
