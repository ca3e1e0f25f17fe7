"""The sweep's options are one dataclass; what run_sweep accepts as a target is typed."""

from __future__ import annotations

import threading

import pytest

from nbp_kit.client.seams import AttemptSink
from nbp_kit.errors import ConfigError
from nbp_kit.records import Attempt
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.recording import RecordingSink
from nbp_kit.runs.runner import SweepOptions, _client_factory, _prepare, run_sweep
from nbp_kit.runs.store import RunStore


def test_unknown_option_is_named_before_any_request():
    with pytest.raises(ConfigError, match=r"concurency=4 is not accepted; a sweep takes store, spend_cap_usd"):
        run_sweep(Plan(prompts=["a cat"]), {}, concurency=4)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": "adaptive", "max_concurrency": True}, "max_concurrency=True"),
        ({"arrival": "burst"}, "arrival='burst'"),
        ({"rate_per_min": -1}, "rate_per_min=-1"),
        ({"max_error_rate": 0}, "max_error_rate=0"),
        ({"error_window": 0}, "error_window=0"),
        ({"store": "runs.sqlite"}, "store='runs.sqlite'"),
    ],
)
def test_bad_options_name_the_argument(options, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        SweepOptions.from_kwargs(options).validate()


def test_a_target_of_no_accepted_kind_is_refused():
    with pytest.raises(ConfigError, match="client_or_settings=int is not accepted"):
        _client_factory(42, Plan(prompts=["a cat"]))  # type: ignore[arg-type]


def test_prepare_records_the_options_with_the_run():
    store = RunStore.memory()
    opts = SweepOptions.from_kwargs({"store": store, "concurrency": 3, "progress": False})
    prep = _prepare(
        Plan(prompts=["a cat"]), {"base_url": "http://127.0.0.1:9", "api_key": "k"}, opts, threading.Event()
    )
    meta = store.get_run(prep.run_id)["meta"]
    assert meta["concurrency"] == 3 and meta["arrival"] == "closed"
    assert prep.options.cap == 3 and not prep.options.adaptive


def test_recording_sink_is_an_attempt_sink_and_counts():
    store = RunStore.memory()
    run_id = store.create_run(plan={}, provider="gemini", base_host="", run_id="r1")
    sink = RecordingSink(store)
    assert isinstance(sink, AttemptSink)
    a = Attempt("a1", "c1", 1, run_id=run_id)
    sink.attempt_started(a)
    assert sink.in_flight_attempts == {"a1"}
    sink.attempt_finished(Attempt("a1", "c1", 1, run_id=run_id, status="error", error_kind="rate_limited"))
    sink.attempt_finished(Attempt("a2", "c1", 2, run_id=run_id, status="ok", cost_usd=0.134))
    assert (sink.attempts, sink.ok, sink.rate_limited, sink.in_flight_attempts) == (2, 1, 1, set())
    assert sink.spent_usd() == pytest.approx(0.134)
