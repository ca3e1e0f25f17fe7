"""One table of bad inputs over every public entry point and CLI flag.

Each case must fail *before any request is sent* (the emulator's request count does not move)
with an error that names the argument: ``ConfigError`` (a ``ValueError``) from the Python API,
exit code 2 and the flag's name on stderr from the CLI. Other tests check individual messages
in depth (test_spec.py, test_client_config.py, test_sweep_plan.py, test_cli.py, ...); this
table is the breadth check, and its size is reported in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbp_kit import (
    AsyncClient,
    Client,
    ImageSpec,
    Plan,
    RetryPolicy,
    RunStore,
    Timeouts,
    analysis,
    cli,
    report,
    run_sweep,
    start_sweep,
)
from nbp_kit import emulator as emulator_mod
from nbp_kit.analysis.synthetic import synthetic_attempts
from nbp_kit.errors import ConfigError


@pytest.fixture(scope="module")
def emu():
    with emulator_mod.start("instant", time_scale=0.005, faults=False, quotas=False) as e:
        yield e


def _requests(emu: Any) -> int:
    return emu.stats()["requests"]


def _api_cases(emu: Any, tmp: Path) -> list[tuple[str, str, Callable[[], Any]]]:
    """(case id, text the message must contain, call)."""
    store = RunStore.memory()
    frame = synthetic_attempts(60, seed=1)

    def client(**kw: Any) -> Callable[[], Any]:
        return lambda: Client.for_emulator(emu, output_dir=tmp, **kw)

    def gen(**kw: Any) -> Callable[[], Any]:
        def call() -> Any:
            args = {"prompt": "a cat", **kw}
            prompt = args.pop("prompt")
            spec = args.pop("spec", None)
            with Client.for_emulator(emu, output_dir=tmp) as c:
                return c.generate(prompt, spec, **args)

        return call

    def agen(**kw: Any) -> Callable[[], Any]:
        async def run() -> Any:
            args = {"prompt": "a cat", **kw}
            prompt = args.pop("prompt")
            spec = args.pop("spec", None)
            async with AsyncClient.for_emulator(emu, output_dir=tmp) as c:
                return await c.generate(prompt, spec, **args)

        return lambda: asyncio.run(run())

    ok_plan = Plan(prompts=["a cat"])
    cases: list[tuple[str, str, Callable[[], Any]]] = [
        # ImageSpec
        ("spec-resolution-3K", "resolution", lambda: ImageSpec(resolution="3K")),
        ("spec-resolution-lower", "resolution", lambda: ImageSpec(resolution="2k")),
        ("spec-aspect", "aspect_ratio", lambda: ImageSpec(aspect_ratio="7:3")),
        ("spec-thinking", "thinking_level", lambda: ImageSpec(thinking_level="extreme")),
        ("spec-grid", "grid", lambda: ImageSpec(grid="4x4")),
        ("spec-format", "output_format", lambda: ImageSpec(output_format="gif")),
        ("spec-model", "model", lambda: ImageSpec(model="")),
        # Client / AsyncClient constructors
        ("client-provider", "provider", lambda: Client("openai", api_key="k")),
        ("client-key-missing", "api_key", lambda: Client("relay", api_key="", base_url="https://relay.example/v1")),
        ("client-base-url", "base_url", lambda: Client(api_key="k", base_url="ftp://x")),
        ("client-base-url-query", "base_url", lambda: Client(api_key="k", base_url="https://x/?key=1")),
        ("client-http2", "http2", client(http2="yes")),
        ("client-verify", "verify", client(verify=tmp / "missing.pem")),
        ("client-timeouts", "timeouts", client(timeouts={"read": 1})),
        ("client-retry", "retry", client(retry=3)),
        ("client-sink", "sink", client(sink=object())),
        ("client-pacer", "pacer", client(pacer=object())),
        ("client-max-connections", "max_connections", client(max_connections=0)),
        ("client-model", "model", client(model="")),
        ("client-stream-relay", "stream", lambda: Client.for_emulator(emu, provider="relay", stream=True)),
        ("async-client-provider", "provider", lambda: AsyncClient("nope", api_key="k")),
        ("async-client-retry", "retry", lambda: AsyncClient.for_emulator(emu, retry="4")),
        ("timeouts-negative", "connect_s", lambda: Timeouts(connect_s=-1)),
        ("timeouts-deadline-keys", "deadline_s", lambda: Timeouts(deadline_s={"1K": 1})),
        ("retry-max-attempts", "max_attempts", lambda: RetryPolicy(max_attempts=0)),
        ("retry-kinds", "retry_kinds", lambda: RetryPolicy(retry_kinds=frozenset({"sometimes"}))),
        # generate (sync and async)
        ("generate-prompt-empty", "prompt", gen(prompt="  ")),
        ("generate-prompt-type", "prompt", gen(prompt=None)),
        ("generate-spec-type", "spec", gen(spec={"resolution": "1K"})),
        ("generate-seed-negative", "seed", gen(seed=-1)),
        ("generate-seed-type", "seed", gen(seed="1")),
        ("generate-stream-type", "stream", gen(stream="yes")),
        ("generate-save-type", "save", gen(save=1)),
        ("generate-raise-type", "raise_on_error", gen(raise_on_error="no")),
        ("generate-scheduled-at", "scheduled_at", gen(scheduled_at="now")),
        ("generate-headers", "headers", gen(headers=["x"])),
        ("generate-thinking-on-pro", "thinking", gen(spec=ImageSpec(thinking_level="high"))),
        ("generate-images-mime", "images[0]", gen(images=[b"GIF89a" + b"\0" * 64])),
        ("generate-images-count", "images", gen(images=[_tiny_png()] * 15)),
        ("generate-images-inline-cap", "images", gen(images=[_tiny_png() + b"\0" * 16_000_000])),
        ("generate-images-unreadable", "images[0]", gen(images=[tmp / "no-such-reference.png"])),
        (
            "generate-images-relay",
            "images",
            lambda: Client.for_emulator(emu, provider="relay", output_dir=tmp).generate("a cat", images=[_tiny_png()]),
        ),
        ("async-generate-images", "images[0]", agen(images=[b"not an image"])),
        ("async-generate-prompt", "prompt", agen(prompt="")),
        ("async-generate-seed", "seed", agen(seed=2**40)),
        # Plan
        ("plan-prompts-empty", "prompts", lambda: Plan(prompts=[])),
        ("plan-prompt-blank", "prompts", lambda: Plan(prompts=[" "])),
        ("plan-resolution", "resolution", lambda: Plan(prompts=["a"], resolutions=["3K"])),
        ("plan-repetitions", "repetitions", lambda: Plan(prompts=["a"], repetitions=-1)),
        ("plan-repetitions-zero", "repetitions", lambda: Plan(prompts=["a"], repetitions=0)),
        ("plan-seed", "seed", lambda: Plan(prompts=["a"], seed="x")),
        ("plan-provider", "provider", lambda: Plan(prompts=["a"], provider="dall-e")),
        ("plan-transport", "transports", lambda: Plan(prompts=["a"], transports=["carrier-pigeon"])),
        ("plan-grid", "grids", lambda: Plan(prompts=["a"], grids=["5x5"])),
        ("plan-aspect", "aspect_ratio", lambda: Plan(prompts=["a"], aspect_ratios=["1:7"])),
        ("plan-from-file", "plan file", lambda: Plan.from_file(tmp / "no-such-plan.json")),
        # run_sweep / start_sweep
        (
            "sweep-concurrency-zero",
            "concurrency",
            lambda: run_sweep(ok_plan, emu, store=store, concurrency=0, progress=False),
        ),
        (
            "sweep-concurrency-word",
            "concurrency",
            lambda: run_sweep(ok_plan, emu, store=store, concurrency="lots", progress=False),
        ),
        (
            "sweep-cap-below-one-image",
            "spend_cap",
            lambda: run_sweep(ok_plan, emu, store=store, spend_cap_usd=0.001, progress=False),
        ),
        (
            "sweep-cap-negative",
            "spend_cap",
            lambda: run_sweep(ok_plan, emu, store=store, spend_cap_usd=-1, progress=False),
        ),
        ("sweep-arrival", "arrival", lambda: run_sweep(ok_plan, emu, store=store, arrival="random", progress=False)),
        ("sweep-rate", "rate_per_min", lambda: run_sweep(ok_plan, emu, store=store, rate_per_min=-5, progress=False)),
        (
            "sweep-max-error-rate",
            "max_error_rate",
            lambda: run_sweep(ok_plan, emu, store=store, max_error_rate=2, progress=False),
        ),
        ("sweep-store-type", "store", lambda: run_sweep(ok_plan, emu, store="runs.sqlite", progress=False)),
        ("sweep-plan-type", "plan", lambda: run_sweep({"prompts": ["a"]}, emu, store=store, progress=False)),
        (
            "sweep-unknown-run",
            "run_id",
            lambda: run_sweep(None, emu, store=store, run_id="no-such-run", progress=False),
        ),
        (
            "start-sweep-concurrency",
            "concurrency",
            lambda: start_sweep(ok_plan, emu, store=store, concurrency=-3, progress=False),
        ),
        (
            "start-sweep-max-concurrency",
            "max_concurrency",
            lambda: start_sweep(ok_plan, emu, store=store, max_concurrency=0, progress=False),
        ),
        # RunStore
        ("store-path-type", "path", lambda: RunStore(12345)),
        ("store-tag-unknown", "run_id", lambda: RunStore.memory().tag_run("nope", "x")),
        ("store-export-suffix", "path", lambda: _store_with_run().export("r1", tmp / "out.xlsx")),
        # emulator.start
        ("emu-profile", "profile", lambda: emulator_mod.start("no-such-profile")),
        ("emu-network", "network", lambda: emulator_mod.start(network="carrier-pigeon")),
        ("emu-time-scale", "time_scale", lambda: emulator_mod.start(time_scale=-1)),
        ("emu-port", "port", lambda: emulator_mod.start(port=70000)),
        ("emu-clock-start", "clock_start", lambda: emulator_mod.start(clock_start="yesterday-ish")),
        ("emu-clock-speed", "clock_speed", lambda: emulator_mod.start(clock_speed=0)),
        # analysis
        ("analysis-quantiles", "quantiles", lambda: analysis.summarize(frame, quantiles=(1.5,))),
        ("analysis-latency", "latency", lambda: analysis.summarize(frame, latency=("wall-clock",))),
        ("analysis-frame", "df", lambda: analysis.summarize([1, 2, 3])),
        ("analysis-knob", "knob", lambda: analysis.knob_effect(frame, "no_such_knob")),
        ("analysis-tz", "tz", lambda: analysis.hour_of_week(frame, tz="Mars/Olympus_Mons")),
        # report
        (
            "report-run-id",
            "run_id",
            lambda: report.build_report("no-such-run", store_path=_empty_store(tmp), out_dir=tmp),
        ),
        (
            "report-store-missing",
            "store_path",
            lambda: report.build_report("r", store_path=tmp / "none.sqlite", out_dir=tmp),
        ),
        ("report-session-provider", "provider", lambda: report.open_session("dall-e", use_emulator=True)),
    ]
    return cases


def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    return buf.getvalue()


def _empty_store(tmp: Path) -> Path:
    RunStore(tmp / "empty.sqlite").close()
    return tmp / "empty.sqlite"


def _store_with_run() -> RunStore:
    s = RunStore.memory()
    s.create_run(plan={}, provider="gemini", run_id="r1")
    return s


def test_every_public_entry_point_rejects_bad_input_before_sending(emu: Any, tmp_path: Path) -> None:
    cases = _api_cases(emu, tmp_path)
    failures: list[str] = []
    for case_id, needle, call in cases:
        before = _requests(emu)
        try:
            result = call()
        except ConfigError as exc:
            if needle not in str(exc):
                failures.append(f"{case_id}: message does not name {needle!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the table reports every miss at once
            failures.append(f"{case_id}: {type(exc).__name__} instead of ConfigError: {exc}")
        else:
            with contextlib.suppress(Exception):
                getattr(result, "stop", lambda: None)()
            failures.append(f"{case_id}: accepted ({result!r:.80})")
        if _requests(emu) != before:
            failures.append(f"{case_id}: a request was sent")
    print(f"bad input: {len(cases)} API cases")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 70


# --------------------------------------------------------------------------- CLI
def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, err.getvalue()


SWEEP = ("sweep", "--emulator", "--no-progress", "--prompt", "a cat")
CLI_CASES: list[tuple[str, tuple[str, ...]]] = [
    ("--time-scale", (*SWEEP, "--time-scale", "fast")),
    ("--time-scale", (*SWEEP, "--time-scale", "-1")),
    ("--profile", (*SWEEP, "--profile", "no-such-profile")),
    ("--resolution", (*SWEEP, "--resolution", "3K")),
    ("--thinking", (*SWEEP, "--thinking", "extreme")),
    ("--aspect", (*SWEEP, "--aspect", "7:3")),
    ("--grid", (*SWEEP, "--grid", "5x5")),
    ("--transport", (*SWEEP, "--transport", "pigeon")),
    ("--repetitions", (*SWEEP, "--repetitions", "-2")),
    ("--repetitions", (*SWEEP, "--repetitions", "many")),
    ("--seed", (*SWEEP, "--seed", "x")),
    ("--provider", (*SWEEP, "--provider", "dall-e")),
    ("--spend-cap", (*SWEEP, "--spend-cap", "-1")),
    ("--spend-cap", (*SWEEP, "--spend-cap", "lots")),
    ("--concurrency", (*SWEEP, "--concurrency", "0")),
    ("--concurrency", (*SWEEP, "--concurrency", "lots")),
    ("--max-concurrency", (*SWEEP, "--max-concurrency", "0")),
    ("--rate", (*SWEEP, "--rate", "-3")),
    ("--images-per-min", (*SWEEP, "--images-per-min", "0")),
    ("--arrival", (*SWEEP, "--arrival", "random")),
    ("--max-error-rate", (*SWEEP, "--max-error-rate", "7")),
    ("--plan", ("sweep", "--emulator", "--no-progress", "--plan", "/no/such/plan.json")),
    ("--base-url", ("sweep", "--base-url", "ftp://example", "--prompt", "a", "--no-progress")),
    ("--emulator", ("sweep", "--emulator", "--base-url", "https://x", "--prompt", "a", "--no-progress")),
    ("--prompt", ("sweep", "--emulator", "--no-progress")),
    ("--run-id", ("sweep", "--emulator", "--no-progress", "--run-id", "no-such-run")),
    ("--interval-min", ("probe", "--emulator", "--interval-min", "0", "--rounds", "1")),
    ("--jitter", ("probe", "--emulator", "--jitter", "3", "--rounds", "1")),
    ("--rounds", ("probe", "--emulator", "--rounds", "0")),
    ("--duration-h", ("probe", "--emulator", "--duration-h", "-1")),
    ("--clock-speed", ("probe", "--emulator", "--clock-speed", "0", "--rounds", "1")),
    ("--clock-start", ("probe", "--emulator", "--clock-start", "not-a-date", "--rounds", "1")),
    ("action", ("runs", "explode")),
    ("path", ("export", "some-run", "out.xlsx")),
    ("--repetitions", ("demo", "--repetitions", "0")),
    ("--time-scale", ("demo", "--time-scale", "0")),
    ("--port", ("emulator", "--port", "70000")),
    ("--network", ("emulator", "--network", "carrier-pigeon")),
    ("run_id", ("report", "no-such-run")),
]


def test_every_cli_flag_rejects_bad_values_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBP_KIT_RUNS", str(tmp_path / "runs"))
    for var in ("NBP_KIT_RELAY_KEY", "NBP_KIT_RELAY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-never-sent")  # so --base-url is judged on its own value
    store = str(tmp_path / "store.sqlite")
    failures: list[str] = []
    for flag, argv in CLI_CASES:
        with_store = (*argv, "--store", store) if argv[0] not in ("emulator",) else argv
        code, err = _cli(*with_store)
        if code != 2:
            failures.append(f"{flag}: exit {code} for {' '.join(argv)}: {err[-300:]}")
        elif flag.lstrip("-").replace("-", "_") not in err.replace("-", "_"):
            failures.append(f"{flag}: message does not name it: {err[-300:]}")
        # nothing was recorded, so nothing was sent
        if Path(store).exists():
            rows = RunStore(store, read_only=True).attempts()
            if len(rows):
                failures.append(f"{flag}: {len(rows)} attempts were recorded")
    print(f"bad input: {len(CLI_CASES)} CLI cases")
    assert not failures, "\n".join(failures)
