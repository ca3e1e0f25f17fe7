"""A canary key never shows up in a repr, log record, exception text or record.

Failing requests against the real emulator: a bad key, a 429 and a connection reset,
over HTTP/1.1 and HTTP/2 (hpack logs header values at DEBUG level).
"""

from __future__ import annotations

import base64
import logging
import urllib.parse

import pytest
import stamina

from nbp_kit import Client, RequestFailed, RetryPolicy

CANARY = "canary-0123456789abcdef"  # deliberately not shaped like a Google key
FORMS = (CANARY, urllib.parse.quote(CANARY, safe=""), base64.b64encode(CANARY.encode()).decode())


def _assert_clean(text: str) -> None:
    for form in FORMS:
        assert form not in text


@pytest.mark.parametrize("tls", [False, True])
def test_canary_absent_everywhere(emulator_factory, tmp_path, caplog, tls) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug log, hpack included
    strict = emulator_factory(api_key="the-only-key-the-emulator-takes", tls=tls)
    lenient = emulator_factory(tls=tls)
    texts: list[str] = []
    with stamina.set_testing(True, attempts=2, cap=True):
        for emu, fault in ((strict, None), (lenient, "429"), (lenient, "reset")):
            client = Client.for_emulator(emu, api_key=CANARY, output_dir=tmp_path, retry=RetryPolicy(max_attempts=2))
            texts.append(repr(client))
            headers = {"x-emulator-fault": fault} if fault else None
            with client, pytest.raises(RequestFailed) as info:
                client.generate("a cat", headers=headers, save=False)
            exc = info.value
            texts += [str(exc), repr(exc), *(repr(a) for a in exc.attempts), *(str(a.as_dict()) for a in exc.attempts)]
            cause = exc.__cause__
            while cause is not None:
                texts.append(str(cause))
                cause = cause.__cause__
            kinds = {a.error_kind for a in exc.attempts}
            assert kinds & {"auth", "rate_limited", "connection_reset"}, kinds
    texts += [r.getMessage() for r in caplog.records]
    assert any("hpack" in r.name for r in caplog.records) == tls  # HTTP/2 really was logged
    for text in texts:
        _assert_clean(text)
