"""A canary key through a full run; then every artifact is scanned for it. Expected hits: 0.

Builds on tests/test_client_secrets.py (which checks one client's texts over HTTP/1.1 and
HTTP/2) with everything a user's run writes:

1. ``nbp-kit sweep --base-url <emulator>`` with the key only in ``GEMINI_API_KEY``, against an
   emulator that accepts any key and injects random 429s, resets, 500s, truncated bodies;
   the same with the relay (``NBP_KIT_RELAY_KEY``); a sweep against an emulator that rejects
   the key (bad key: every attempt fails with its message recorded);
2. the Python API with the key passed explicitly, forced 429 / reset / bad key, exception
   texts, reprs and causes written to a file;
3. ``nbp-kit report`` (HTML), ``nbp-kit export`` to Parquet and CSV, ``nbp-kit runs``;
4. notebooks 01 and 02 executed by papermill with the key in the kernel's environment;
5. DEBUG logs of every library (hpack, httpx2, httpcore2, stamina, nbp_kit) to a file.

The scan reads every file under the run's folder (SQLite files including ``-wal``, Parquet,
CSV, logs, notebooks, HTML, PNGs) and looks for the key raw, URL-encoded, and base64-encoded at
each of the three byte alignments (a key inside a longer base64 blob shows up as one of them).
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import stamina

from nbp_kit import AsyncClient, Client, RetryPolicy, cli
from nbp_kit import emulator as emulator_mod
from nbp_kit.errors import RequestFailed

CANARY = "canary-5f3e9a7c1b2d4e60"  # not shaped like a Google ("AIza...") or OpenAI ("sk-...") key


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    forms = {raw, urllib.parse.quote(secret, safe="").encode(), urllib.parse.quote_plus(secret).encode()}
    for shift in range(3):  # the key's base64 at each alignment inside a longer encoded text
        enc = base64.b64encode(b"\0" * shift + raw)
        start = {0: 0, 1: 4, 2: 4}[shift]  # drop the characters that mix in the prefix bytes
        forms.add(enc[start : len(enc) - 4])
        forms.add(base64.urlsafe_b64encode(b"\0" * shift + raw)[start : len(enc) - 4])
    return sorted(forms)


def _scan(root: Path) -> tuple[int, int, list[str]]:
    forms = _forms(CANARY)
    files = nbytes = 0
    hits: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files += 1
        nbytes += len(data)
        hits += [f"{path.relative_to(root)}: {form!r}" for form in forms if form in data]
    return files, nbytes, hits


def test_canary_forms_are_found_when_present(tmp_path: Path) -> None:
    """The scanner itself works: each form planted in a file is found."""
    for i, form in enumerate(_forms(CANARY)):
        (tmp_path / f"f{i}.bin").write_bytes(b"xx" + form + b"yy")
    planted = base64.b64encode(b"Authorization: Bearer " + CANARY.encode())
    (tmp_path / "blob.txt").write_bytes(planted)
    files, _, hits = _scan(tmp_path)
    assert len(hits) >= files  # every file has at least one hit, the blob included
    assert any("blob.txt" in h for h in hits)


def _faulty_profile() -> dict[str, Any]:
    profile = dict(emulator_mod.load_profile("instant"))
    profile["faults"] = {"429": 0.12, "reset": 0.12, "500": 0.06, "truncated": 0.06, "html": 0.04}
    profile["fault_params"] = {"retry_delay_s": [8, 45]}
    return profile


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue() + err.getvalue()


@pytest.mark.timeout(600)
def test_full_run_with_a_canary_key_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "run"
    root.mkdir()
    monkeypatch.setenv("GEMINI_API_KEY", CANARY)
    monkeypatch.setenv("NBP_KIT_RELAY_KEY", CANARY)
    monkeypatch.setenv("NBP_KIT_RUNS", str(root / "runs"))
    log_file = root / "logs" / "debug.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    texts: list[str] = []
    store = root / "store.sqlite"
    try:
        lenient = emulator_mod.start(_faulty_profile(), time_scale=0.005, faults=True, quotas=False)
        strict = emulator_mod.start(
            "instant", time_scale=0.005, faults=False, quotas=False, api_key="the-only-key-the-emulator-takes"
        )
        try:
            with stamina.set_testing(True, attempts=10, cap=True):
                # 1. CLI sweeps: gemini (unary + stream), relay, and a rejected key
                common = (
                    "--store",
                    str(store),
                    "--output-dir",
                    str(root / "images"),
                    "--no-progress",
                    "--spend-cap",
                    "20",
                    "--resolution",
                    "1K",
                    "--max-error-rate",
                    "1.0",
                    "--seed",
                    "3",
                )
                code, out = _cli(
                    "sweep",
                    "--base-url",
                    lenient.base_url,
                    "--prompt",
                    "canary cat",
                    "--prompt",
                    "canary dog",
                    "--repetitions",
                    "6",
                    "--transport",
                    "unary,stream",
                    "--run-id",
                    "canary-gemini",
                    *common,
                )
                texts.append(out)
                assert code == 0, out
                code, out = _cli(
                    "sweep",
                    "--base-url",
                    lenient.base_url,
                    "--provider",
                    "relay",
                    "--prompt",
                    "canary relay",
                    "--repetitions",
                    "6",
                    "--run-id",
                    "canary-relay",
                    *common,
                )
                texts.append(out)
                assert code == 0, out
                code, out = _cli(
                    "sweep",
                    "--base-url",
                    strict.base_url,
                    "--prompt",
                    "bad key",
                    "--repetitions",
                    "2",
                    "--run-id",
                    "canary-badkey",
                    *common,
                )
                texts.append(out)
                # a refused key stops the sweep at its first call, loudly, with a non-zero exit
                assert code == 4 and "0 ok, 1 failed" in out and "stopped at the first call" in out, out
                # 2. the Python API with the key passed explicitly
                for provider in ("gemini", "relay"):
                    for emu, fault in ((strict, None), (lenient, "429"), (lenient, "reset"), (lenient, "truncated")):
                        client = Client(
                            provider,
                            api_key=CANARY,
                            base_url=emu.base_url,
                            output_dir=root / "images",
                            retry=RetryPolicy(max_attempts=2),
                        )
                        texts.append(repr(client))
                        with client:
                            try:
                                client.generate("explicit key", headers={"x-emulator-fault": fault} if fault else None)
                            except RequestFailed as exc:
                                texts += [str(exc), repr(exc), *(repr(a) for a in exc.attempts)]
                                cause = exc.__cause__
                                while cause is not None:
                                    texts += [str(cause), repr(cause)]
                                    cause = cause.__cause__
                texts.append(repr(AsyncClient(api_key=CANARY, base_url=lenient.base_url)))
        finally:
            lenient.stop()
            strict.stop()
        # 3. report, exports, listing
        for run_id in ("canary-gemini", "canary-relay", "canary-badkey"):
            code, out = _cli("report", run_id, "--store", str(store), "--out-dir", str(root / "reports"))
            texts.append(out)
            assert code == 0, out
        for suffix in ("parquet", "csv"):
            code, out = _cli(
                "export", "canary-gemini", str(root / "exports" / f"gemini.{suffix}"), "--store", str(store)
            )
            texts.append(out)
            assert code == 0, out
        code, out = _cli("runs", "list", "--store", str(store))
        texts.append(out)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
        handler.close()

    # 4. notebooks 01 and 02 with the key in the kernel's environment (emulator forced on)
    import papermill as pm

    from nbp_kit._paths import NOTEBOOKS_DIR

    nb_dir = root / "notebooks"
    nb_dir.mkdir()
    for name, params in (
        ("01-quickstart.ipynb", {}),
        ("02-resolution-thinking-sweep.ipynb", {"resolutions": ["1K"], "repetitions": 2, "min_n": 2}),
    ):
        pm.execute_notebook(
            str(NOTEBOOKS_DIR / name),
            str(nb_dir / name),
            parameters={"use_emulator": True, **params},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(NOTEBOOKS_DIR),
            execution_timeout=240,
        )

    (root / "captured-texts.txt").write_text("\n".join(texts))
    import sqlite3

    conn = sqlite3.connect(store)
    counts = dict(conn.execute("SELECT COALESCE(error_kind, status), COUNT(*) FROM attempts GROUP BY 1").fetchall())
    conn.close()
    # the run really went through failures that carry server and transport text
    assert counts.get("auth", 0) >= 1 and counts.get("ok", 0) >= 10, counts
    assert sum(counts.get(k, 0) for k in ("rate_limited", "connection_reset", "server_error", "bad_payload")) >= 3, (
        counts
    )
    assert log_file.stat().st_size > 0 and any((root / "reports").glob("*.html"))
    files, nbytes, hits = _scan(root)
    print(f"canary scan: {files} files, {nbytes} bytes, {len(hits)} hits; attempts {counts}")
    assert files >= 10 and nbytes > 100_000
    assert hits == [], hits
    shutil.rmtree(root / "images", ignore_errors=True)
