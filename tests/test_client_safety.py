"""Where a key could leak or the client could be steered (see docs/client.md, "Safety")."""

from __future__ import annotations

import warnings

import pytest

from nbp_kit.client.core import AsyncClient, Client
from nbp_kit.client.safety import KeyExposureWarning, check_image_url
from nbp_kit.errors import BadPayload

RELAY = "https://relay.example"


@pytest.mark.parametrize(
    ("base_url", "verify"), [("http://relay.example:8080", True), ("https://relay.example", False)]
)
def test_a_key_about_to_go_unprotected_warns(base_url: str, verify: bool) -> None:
    with pytest.warns(KeyExposureWarning, match="relay.example"):
        AsyncClient("relay", api_key="sk-test-123456", base_url=base_url, verify=verify)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000", "http://localhost:9", "https://relay.example"])
def test_loopback_and_verified_https_do_not_warn(base_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeyExposureWarning)
        AsyncClient("relay", api_key="sk-test-123456", base_url=base_url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cdn.example/a.png", "plain http"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.0.0.7/a.png", "private"),
        ("https://192.168.1.2/a.png", "private"),
        ("https://[fe80::1]/a.png", "link-local"),
        ("file:///etc/passwd", "not an http"),
    ],
)
def test_refused_image_urls(url: str, why: str) -> None:
    with pytest.raises(BadPayload, match=why.split()[0]):
        check_image_url(url, base_url=RELAY)


def test_allowed_image_urls() -> None:
    assert check_image_url("https://93.184.215.14/a.png", base_url=RELAY) == "https://93.184.215.14/a.png"
    assert check_image_url("http://127.0.0.1:9/a.png", base_url=RELAY).startswith("http://127.0.0.1")
    assert check_image_url("https://10.0.0.7/a.png", base_url=RELAY, allow_private=True)
    # the relay's own host, even on the LAN and over http, is where the key already goes
    assert check_image_url("http://10.0.0.7/f.png", base_url="http://10.0.0.7")


def test_a_refused_url_fails_the_attempt_before_any_fetch(tmp_path) -> None:
    """A relay answering with a link-local URL: the attempt fails as bad_payload, nothing fetched."""
    import httpx2

    def relay(request: httpx2.Request) -> httpx2.Response:
        assert request.url.host == "relay.test", "the image URL must not be fetched"
        return httpx2.Response(200, json={"data": [{"url": "https://169.254.169.254/latest/meta-data/x.png"}]})

    with Client(
        "relay",
        api_key="sk-test-123456",
        base_url="https://relay.test",
        output_dir=tmp_path,
        transport=httpx2.MockTransport(relay),
    ) as client:
        with pytest.raises(BadPayload, match="link-local"):
            client.generate("a cat")
