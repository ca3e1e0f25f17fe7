"""Where a key could leak or the client could be steered: plain-HTTP keys and relay image URLs.

* :func:`warn_if_key_exposed`: a :class:`KeyExposureWarning` when the key is about to go over
  plain HTTP to a host other than this machine, or over TLS that is not verified.
* :func:`check_image_url`: a relay's ``data[0].url`` is fetched only over https (http only on
  loopback or the relay's own host), never from link-local, private or reserved addresses
  (cloud metadata, the LAN) unless the user allows it; :data:`MAX_IMAGE_BYTES` bounds the body,
  the same limit an inline image meets in a stream event.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
import warnings
from typing import Any

from ..errors import BadPayload
from ..providers.sse import MAX_EVENT_BYTES

#: The largest image body the kit reads, fetched or inline (the SSE parser's event limit).
MAX_IMAGE_BYTES: int = MAX_EVENT_BYTES


class KeyExposureWarning(UserWarning):
    """The API key is about to travel where others could read it."""


def _is_loopback_host(host: str) -> bool:
    """Loopback, or a name reserved never to resolve on a network (RFC 2606 ``.test``, ``.invalid``)."""
    if host in ("localhost", "localhost.") or host.endswith((".localhost", ".test", ".invalid")):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_key_exposed(base_url: str, verify: Any) -> None:
    """Warn when the key would go over plain HTTP off this machine, or with ``verify=False``."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not _is_loopback_host(host):
        warnings.warn(
            f"base_url={base_url!r} is plain HTTP to {host!r}: the API key will travel unencrypted; use https",
            KeyExposureWarning,
            stacklevel=3,
        )
    elif verify is False and not _is_loopback_host(host):
        warnings.warn(
            f"verify=False: the API key goes to {host!r} over TLS whose certificate is not checked; "
            "pass a CA bundle path instead",
            KeyExposureWarning,
            stacklevel=3,
        )


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BadPayload(f"image URL host {host!r} does not resolve: {exc}", kind="bad_payload") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_image_url(url: str, *, base_url: str, allow_private: bool = False) -> str:
    """The absolute URL to fetch, or :class:`BadPayload` naming why it is refused.

    >>> check_image_url("/v1/files/a.png", base_url="http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1/files/a.png'
    >>> check_image_url("http://cdn.example/a.png", base_url="https://relay.example")
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: image URL 'http://cdn.example/a.png' is refused: plain http is fetched only from loopback or the relay itself; the relay must give an https URL
    """
    target = urllib.parse.urljoin(base_url.rstrip("/") + "/", url) if url.startswith("/") else url
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    own = host == (urllib.parse.urlsplit(base_url).hostname or "")
    if parts.scheme not in ("https", "http") or not host:
        raise BadPayload(f"image URL {url[:120]!r} is refused: not an http(s) URL", kind="bad_payload")
    if parts.scheme == "http" and not (own or _is_loopback_host(host)):
        raise BadPayload(
            f"image URL {url[:120]!r} is refused: plain http is fetched only from loopback or the "
            "relay itself; the relay must give an https URL",
            kind="bad_payload",
        )
    if own or allow_private or _is_loopback_host(host):
        return target
    for addr in _addresses(host):
        if addr.is_loopback:
            continue
        if addr.is_link_local or addr.is_private or addr.is_reserved or addr.is_multicast or addr.is_unspecified:
            raise BadPayload(
                f"image URL {url[:120]!r} is refused: {host} resolves to {addr}, a link-local, private or reserved "
                "address (pass allow_private_image_urls=True to fetch from your own network)",
                kind="bad_payload",
            )
    return target
