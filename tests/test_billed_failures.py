"""Failed but billed: refusals, wrong images and timed-out attempts cost what the service bills."""

from __future__ import annotations

import copy

import pytest

from nbp_kit.client.core import AsyncClient, Client, Timeouts
from nbp_kit.emulator import load_profile
from nbp_kit.errors import BadPayload, ContentBlocked
from nbp_kit.providers.base import Usage
from nbp_kit.providers.pricing import estimate_cost, failed_attempt_cost, tokens_cost
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore
from nbp_kit.spec import ImageSpec

PRO = "gemini-3-pro-image-preview"


def test_prices_of_failures() -> None:
    spec = ImageSpec(resolution="2K")
    assert failed_attempt_cost("gemini", PRO, spec, "timeout", None) == estimate_cost("gemini", PRO, spec)
    assert failed_attempt_cost("gemini", PRO, spec, "server_error", None) == 0.0
    refusal = Usage(prompt_tokens=1119, output_tokens=None, thoughts_tokens=240)
    assert failed_attempt_cost("gemini", PRO, spec, "safety_block", refusal) == tokens_cost("gemini", PRO, refusal) > 0


def test_refusal_records_its_billed_thinking(emulator, tmp_path) -> None:
    with Client(api_key=emulator.api_key, base_url=emulator.base_url, model=PRO, output_dir=tmp_path) as client:
        with pytest.raises(ContentBlocked) as info:
            client.generate("a cat", headers={"x-emulator-fault": "image-safety"})
    (attempt,) = info.value.attempts
    assert attempt.error_kind == "safety_block" and attempt.thoughts_tokens > 0
    assert (
        attempt.cost_usd
        == tokens_cost("gemini", PRO, Usage(attempt.prompt_tokens, attempt.output_tokens, attempt.thoughts_tokens))
        > 0
    )


def test_wrong_size_images_are_billed_on_every_attempt(emulator, tmp_path) -> None:
    with Client(api_key=emulator.api_key, base_url=emulator.base_url, model=PRO, output_dir=tmp_path) as client:
        with pytest.raises(BadPayload) as info:
            client.generate("a cat", headers={"x-emulator-fault": "wrong-size"})
    attempts = info.value.attempts
    assert [a.error_kind for a in attempts] == ["wrong_image", "wrong_image"]
    assert all(a.cost_usd == pytest.approx(0.134, abs=0.01) for a in attempts)


def test_a_sweep_where_every_call_times_out_stops_at_the_spend_cap(emulator_factory, tmp_path) -> None:
    profile = copy.deepcopy(load_profile("instant"))
    profile["faults"] = {"stall": 1.0}
    profile["fault_params"] = {**profile.get("fault_params", {}), "stall_s": 900}
    emu = emulator_factory(profile=profile, faults=True)
    fast = Timeouts(deadline_s={"1K": 0.3, "2K": 0.3, "4K": 0.3})

    def make(*, sink, pacer, retry_budget, output_dir):
        return AsyncClient(
            api_key=emu.api_key,
            base_url=emu.base_url,
            model=PRO,
            timeouts=fast,
            sink=sink,
            pacer=pacer,
            retry_budget=retry_budget,
            output_dir=output_dir,
        )

    store = RunStore.memory()
    price = estimate_cost("gemini", PRO, ImageSpec())
    cap = 12 * price * 1.05  # the plan (12 calls, with its margin) fits; its retried timeouts do not
    res = run_sweep(
        Plan(prompts=["a cat"], repetitions=12, model=PRO),
        make,
        store=store,
        spend_cap_usd=cap,
        concurrency=1,
        progress=False,
        output_dir=tmp_path,
        save_images=False,
    )
    frame = store.attempts(run_ids=[res.run_id])
    assert res.ok == 0 and res.stopped_reason == "spend_cap"
    assert set(frame["error_kind"]) == {"timeout"}
    assert frame["cost_usd"].tolist() == [price] * len(frame)  # each priced as billed
    assert res.run_cost_usd <= cap
