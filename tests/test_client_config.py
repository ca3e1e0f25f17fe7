"""Bad client and call arguments fail before any request, naming the argument and value.

The transport fails the test if it is ever called.
"""

from __future__ import annotations

import httpx2
import pytest

from nbp_kit import Client, ConfigError, ImageSpec, RetryPolicy, Timeouts
from nbp_kit.client.retry import HedgePolicy

KEY = "canary-0123456789abcdef"


def _refuse(request: httpx2.Request) -> httpx2.Response:
    pytest.fail(f"a request was sent: {request.method} {request.url}")


def _client(**kw) -> Client:
    kw.setdefault("api_key", KEY)
    kw.setdefault("base_url", "http://emu.test")
    return Client(transport=httpx2.MockTransport(_refuse), **kw)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"provider": "openai"}, "provider='openai'"),
        ({"api_key": ""}, "api_key=<empty>"),
        ({"base_url": "ftp://host"}, "base_url='ftp://host'"),
        ({"base_url": "not a url"}, "base_url='not a url'"),
        ({"base_url": "https://user:pw@host"}, "no query or credentials"),
        ({"model": ""}, "model=''"),
        ({"http2": "yes"}, "http2='yes'"),
        ({"verify": "/no/such/ca.pem"}, "verify='/no/such/ca.pem'"),
        ({"verify": 3}, "verify=3"),
        ({"timeouts": {"connect": 1}}, "timeouts="),
        ({"retry": 3}, "retry=3"),
        ({"hedge": 0.95}, "hedge=0.95"),
        ({"sink": object()}, "attempt_started"),
        ({"pacer": object()}, "acquire"),
        ({"retry_budget": 10}, "retry_budget=10"),
        ({"max_connections": 0}, "max_connections=0"),
        ({"stream": 1}, "stream=1"),
    ],
)
def test_bad_client_arguments(kwargs: dict, needle: str) -> None:
    provider = kwargs.pop("provider", "gemini")
    with pytest.raises(ConfigError) as info:
        if provider != "gemini":
            Client(provider, api_key=KEY, base_url="http://emu.test")
        else:
            _client(**kwargs)
    assert needle in str(info.value)
    assert KEY not in str(info.value)


def test_missing_key_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        Client(base_url="http://emu.test")
    monkeypatch.delenv("NBP_KIT_RELAY_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="NBP_KIT_RELAY_BASE_URL"):
        Client("relay", api_key=KEY)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"prompt": ""}, "prompt=''"),
        ({"prompt": None}, "prompt=None"),
        ({"prompt": "x", "spec": "2K"}, "spec='2K'"),
        ({"prompt": "x", "spec": ImageSpec(thinking_level="high")}, "thinking_level='high'"),
        ({"prompt": "x", "spec": ImageSpec(grid="3x3")}, "grid='3x3'"),
        ({"prompt": "x", "spec": ImageSpec(output_format="url")}, "output_format='url'"),
        ({"prompt": "x", "seed": -1}, "seed=-1"),
        ({"prompt": "x", "seed": 1.5}, "seed=1.5"),
        ({"prompt": "x", "stream": "yes"}, "stream='yes'"),
        ({"prompt": "x", "save": "no"}, "save='no'"),
        ({"prompt": "x", "scheduled_at": "now"}, "scheduled_at='now'"),
        ({"prompt": "x", "headers": 5}, "headers=5"),
    ],
)
def test_bad_call_arguments(kwargs: dict, needle: str) -> None:
    with _client() as client, pytest.raises(ConfigError) as info:
        client.generate(**kwargs)
    assert needle in str(info.value)


def test_relay_refuses_streaming_before_any_request() -> None:
    with pytest.raises(ConfigError, match="stream=True"):
        Client("relay", api_key=KEY, base_url="http://emu.test", stream=True, transport=httpx2.MockTransport(_refuse))


def test_policies_validate() -> None:
    with pytest.raises(ConfigError, match="deadline_s"):
        Timeouts(deadline_s={"1K": 10})
    with pytest.raises(ConfigError, match="connect_s=0"):
        Timeouts(connect_s=0)
    with pytest.raises(ConfigError, match="quantile=1.5"):
        HedgePolicy(quantile=1.5)
    with pytest.raises(ConfigError, match="max_attempts=0"):
        RetryPolicy(max_attempts=0)


def test_repr_hides_key() -> None:
    with _client() as client:
        assert KEY not in repr(client) and "***" in repr(client)
        assert KEY not in repr(client.aio)


def test_relay_base_url_accepts_v1_suffix() -> None:
    with Client("relay", api_key=KEY, base_url="http://relay.test/v1", transport=httpx2.MockTransport(_refuse)) as c:
        assert c.base_url == "http://relay.test"
