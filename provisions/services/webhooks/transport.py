"""Posting to a webhook receiver over HTTP, only ever to a public address: the address is checked
when an endpoint is registered, before each delivery, and at the moment of connecting, to the very
address connected to (no DNS rebinding). No proxy from the environment, no redirects."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

WEBHOOK_TIMEOUT_SECONDS = 5.0
RESPONSE_KEPT_CHARS = 2000


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: a 3xx is an answer, not a success."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _internal_address(address: str) -> bool:
    """Whether an address is not on the public internet, looking through the IPv6 forms that carry
    an IPv4 address (mapped, 6to4, NAT64)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += [embedded for embedded in (ip.ipv4_mapped, ip.sixtofour) if embedded is not None]
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return any(not candidate.is_global for candidate in candidates)


def _connect_to_public_address(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None
) -> socket.socket:
    """socket.create_connection, refusing internal addresses at the moment of connecting: the name
    is resolved once, and the address checked is the address connected to (no DNS rebinding)."""
    host, port = address
    resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    error: OSError | None = None
    for family, kind, protocol, _, sockaddr in resolved:
        if not allow_private and _internal_address(str(sockaddr[0])):
            error = OSError(f"{host} is at {sockaddr[0]}, an internal address: not connected")
            continue
        connection = socket.socket(family, kind, protocol)
        try:
            if isinstance(timeout, int | float):  # else http.client's "no timeout given" marker
                connection.settimeout(timeout)
            if source_address:
                connection.bind(source_address)
            connection.connect(sockaddr)
            return connection
        except OSError as failed:
            connection.close()
            error = failed
    raise error or OSError(f"{host} did not resolve")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_to_public_address


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_to_public_address


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


# No proxies from the environment (a proxy's address would be checked, not the receiver's), no
# redirects, and connections only to public addresses.
_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _GuardedHTTPHandler, _GuardedHTTPSHandler, _NoRedirects
)


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    text: str
    error: str
    duration_ms: int


def http_post(url: str, *, body: bytes, headers: dict[str, str]) -> _Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    started = time.perf_counter()
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            text, status_code, error = _start_of(response.read(RESPONSE_KEPT_CHARS * 4)), response.status, ""
    except urllib.error.HTTPError as answer:  # a 3xx, 4xx or 5xx: an answer, with a body
        with answer:
            text = _start_of(answer.read(RESPONSE_KEPT_CHARS * 4))
        status_code, error = answer.code, f"HTTP {answer.code}"
    # Refused, unreachable, timed out, TLS, a broken answer, a malformed URL.
    except (OSError, http.client.HTTPException, ValueError) as failure:
        reason = getattr(failure, "reason", None) or failure
        text, status_code, error = "", None, f"{type(failure).__name__}: {reason}"[:2000]
    return _Answer(status_code, text, error, round((time.perf_counter() - started) * 1000))


def _start_of(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")[:RESPONSE_KEPT_CHARS]


def webhook_url_problem(url: str) -> str:
    """Why `url` cannot receive webhooks; empty when it can.

    Only http and https; and, unless settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, only a host whose
    every address is on the public internet: not loopback, private, link-local (cloud metadata),
    shared or reserved. A name that does not resolve now is no problem here: sending it fails and
    is retried like any unreachable receiver. Checked when an endpoint is registered and again
    before each delivery (a name may resolve elsewhere later).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs can receive webhooks"
    if not parts.hostname:
        return "the URL names no host"
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        resolved = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        addresses = {str(info[4][0]) for info in resolved}
    except (OSError, ValueError):  # does not resolve (now), or a malformed port
        return ""
    for address in sorted(addresses):
        if _internal_address(address):
            return (
                f"{parts.hostname} is at {address}, an internal address: webhooks go only to public "
                "addresses (set WEBHOOK_ALLOW_PRIVATE_ADDRESSES to allow a receiver on this network)"
            )
    return ""
