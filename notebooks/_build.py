"""Write the notebooks from their source below: ``python notebooks/_build.py``.

Notebooks are stored without outputs; keeping their text here makes reviews readable
(diffs of Python, not JSON) and keeps every notebook to one shape: a title, one
``parameters`` cell (papermill), calls into the package, and prose for the reader.
Cells tagged ``expect-image`` / ``expect-figure`` must display an image / a plotly figure
with data; ``tests/test_notebooks.py`` executes every notebook and checks that, and that
the saved files match this source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *expects: str) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if expects:
        cell.metadata["tags"] = [f"expect-{k}" for k in expects]
    return cell


def params(text: str) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


_COMMON_PARAMS = """\
provider = "{provider}"   # "gemini" (native API) or "relay" (OpenAI-compatible)
use_emulator = None        # None: the embedded emulator unless a key is set; True/False to force
time_scale = {time_scale}          # emulator only: 0.02 makes a 30 s image take 0.6 s
"""

_OPEN = """\
from nbp_kit import analysis, plots, report, widgets
from nbp_kit.spec import ImageSpec
from nbp_kit import Plan

report.use_inline_plotly()  # figures work offline, in Jupyter and in exported HTML
session = report.open_session(provider, use_emulator=use_emulator, time_scale=time_scale{extra})
print(session.describe())
"""

_REAL_KEY_NOTE = """\
Runs against the **embedded emulator** unless a key is set (`GEMINI_API_KEY`, or
`NBP_KIT_RELAY_BASE_URL` + `NBP_KIT_RELAY_KEY` for a relay): then every request is real and billed,
and the spend cap below applies. Against the emulator, times are scaled by `time_scale`; the
figures say so in red."""

NOTEBOOKS: dict[str, list[nbformat.NotebookNode]] = {}

# --------------------------------------------------------------------------- 01
NOTEBOOKS["01-quickstart.ipynb"] = [
    md(f"""
# 01 · Quickstart: one image, and where its seconds went

**Question:** how long does one Nano Banana Pro image take, and which part of that time is the
model's, the network's and yours?

{_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.02)
        + """\
prompt = "an orange cat asleep on a sunny window sill, soft morning light"
resolution = "1K"
aspect_ratio = "1:1"
"""
    ),
    code(_OPEN.format(extra="")),
    md("""
## One image
`generate` sends one request, retries what is worth retrying, decodes and checks the image
(its pixel size must match the official table) and saves it. Every try is an `Attempt` record.
"""),
    code("""
client = session.client()
gen = client.generate(prompt, ImageSpec(resolution=resolution, aspect_ratio=aspect_ratio))
print(f"ok={gen.ok}  user latency {gen.user_latency_s:.2f} s  cost ${gen.cost_usd:.3f}  "
      f"attempts {len(gen.attempts)}  saved to {gen.image_path}")
"""),
    md("""
The image, shown as a small thumbnail (the full file stays on disk; notebooks stay small):
"""),
    code(
        """
report.show_image(gen.image_path)
""",
        "image",
    ),
    md("""
## Its phase waterfall
Read it left to right: `connect` and `tls` are paid once per connection, `wait` is the
server generating plus one round trip, `download` is the image crossing the network, and
`decode`/`save` are your machine. On almost every setup `wait` dominates: the model is the bottleneck.
"""),
    code(
        """
plots.phase_waterfall(session.store.attempts())
""",
        "figure",
    ),
    md("""
## A second call on the warm connection
The client keeps one long-lived connection pool, so the second request skips `connect` and `tls`.
Compare the two bars: the difference is the set-up cost you save per request with keep-alive.
"""),
    code(
        """
client.generate(prompt, ImageSpec(resolution=resolution, aspect_ratio=aspect_ratio))
attempts = session.store.attempts()
plots.phase_stacked(attempts, by="connection_reused")
""",
        "figure",
    ),
    code("""
print(analysis.bottleneck(attempts))
session.close()
"""),
]

# --------------------------------------------------------------------------- 02
NOTEBOOKS["02-resolution-thinking-sweep.ipynb"] = [
    md(f"""
# 02 · Resolution × thinking: the article's table, with confidence intervals

**Question:** how much slower are 2K and 4K than 1K, and does the thinking level change
latency on *my* provider? The seed article published a table (1K low 15-20 s ... 4K high
80-120 s); here we measure it, with intervals, and say which knob matters.

Thinking level is a relay feature: Google documents no `thinkingLevel` for Pro, so this
notebook defaults to the relay provider. {_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="relay", time_scale=0.02)
        + """\
resolutions = ["1K", "2K", "4K"]
thinking_levels = ["low", "high"]
prompts = ["a lighthouse on a cliff at dusk, oil painting"]
repetitions = 5
concurrency = "adaptive"
spend_cap_usd = 10.0
min_n = 5                  # groups smaller than this get no interval (say so rather than guess)
"""
    ),
    code(_OPEN.format(extra="")),
    md("""
## The sweep
Every repetition is a block shuffled with a seed, so a slow minute spreads over all configs
instead of looking like one config's effect. The estimate is printed before anything is sent.
"""),
    code("""
plan = Plan(prompts=prompts, resolutions=resolutions, thinking_levels=thinking_levels,
            repetitions=repetitions, provider=provider)
print(plan.preflight(time_scale=session.time_scale))
result = session.sweep(plan, concurrency=concurrency, spend_cap_usd=spend_cap_usd)
print(f"{result.ok} ok, {result.failed} failed, ${result.cost_usd:.2f}, {result.wall_s:.1f} s wall")
frame = session.store.attempts([result.run_id])
"""),
    md("""
## The article's table, measured
Published mean range and P95 beside the measured mean and P95 with 95 % intervals
(emulator runs are scaled back to service seconds). `verdict` says whether the article holds here.
"""),
    code("""
analysis.compare_reference(frame, min_n=min_n)
"""),
    code(
        """
plots.latency_box(frame)
""",
        "figure",
    ),
    md("""
## Knob effects
Each knob is compared within the other knobs' levels, so resolution cannot pose as a thinking
effect. The `verdict` column gives one of three answers, against a practical margin (5 % of the
baseline's median unless you pass `margin_frac` or `margin_s`):

- "*high* is slower than *low* by X s (CI ...)": a difference, Holm-corrected across the rows;
- "no effect larger than the ±m s margin (CI ...)": the whole interval lies inside the margin;
- "inconclusive: ...; about N more calls per level would settle it": the data are not enough
  to say either, and the row says how much more to collect.

A small sweep mostly answers "inconclusive": that is the honest answer, not a failure.
"""),
    code("""
analysis.knob_effect(frame, "thinking_level", min_n=min_n)[["resolution", "level", "baseline", "verdict"]]
"""),
    code("""
analysis.knob_effect(frame, "resolution", min_n=min_n)[["thinking_level", "level", "baseline", "verdict"]]
"""),
    md("""
## Recommendation
The fastest configuration, and the cost/latency trade-off (the Pareto front is the set of
configs nothing beats on both).
"""),
    code("""
analysis.best_config(frame)
"""),
    code(
        """
plots.pareto_scatter(frame)
""",
        "figure",
    ),
    md("""
## The images
A few of the sweep's images with their configuration and latency (thumbnails only).
"""),
    code(
        """
from IPython.display import HTML
HTML(report.thumbnails_html(frame, limit=6))
""",
        "image",
    ),
    md("""
Browse all of them: filter by config, enlarge one (a downscaled copy), and put two configs side
by side for the same prompt to judge whether the slower setting is worth it.
"""),
    code("""
widgets.Gallery(frame, limit=24)
"""),
    md("""
## Try your own
The panel builds a plan from your choices, shows its cost and time before you run it, and draws
latency live while the sweep runs in the background (the kernel stays free). It offers only the
thinking levels the chosen provider and model accept.
"""),
    code("""
widgets.SweepPanel(session.target, store=session.store, providers=session.providers,
                   sweep_options={"output_dir": session.output_dir})
"""),
]

# --------------------------------------------------------------------------- 03
NOTEBOOKS["03-network-phases.ipynb"] = [
    md(f"""
# 03 · API or network? HTTP/1.1 vs HTTP/2, cold vs warm, gzip, bandwidth

**Question:** is my bottleneck the API or my network, and which connection settings matter?

The emulator here serves HTTPS with a local CA, so HTTP/2 is negotiated exactly as with Google.
The gzip and bandwidth sections start extra emulators with other network profiles; they run
on the emulator only (a real network cannot be switched from a notebook). {_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.02)
        + """\
resolution = "1K"
calls_per_client = 4       # sequential calls on one client: the first is cold, the rest warm
networks = ["loopback", "office-100mbps", "cross-border-8mbps"]
calls_per_network = 3
"""
    ),
    code(_OPEN.format(extra=', emulator_options={"tls": True}')),
    md("""
## HTTP/1.1 vs HTTP/2, cold vs warm
Two clients, one per protocol, each making a few calls in a row. The first call of each client
opens a connection (`connection_reused` False: cold); the others reuse it (warm).
"""),
    code("""
spec = ImageSpec(resolution=resolution)
for http2 in (False, True):
    c = session.client(http2=http2)
    for _ in range(calls_per_client):
        c.generate("a paper boat on a pond", spec)
protocols = session.store.attempts()
analysis.summarize(protocols, by=["http_version", "connection_reused"], latency="attempt", min_n=3)[
    ["http_version", "connection_reused", "n", "mean", "p50", "p95"]]
"""),
    code(
        """
plots.phase_stacked(protocols, by=["http_version", "connection_reused"])
""",
        "figure",
    ),
    md("""
Look at `connect` + `tls` in the cold bars: that is what keep-alive saves on every request.
HTTP/2 matters little for one request at a time; it matters when many requests share a connection.

## So: API or network?
The share of each request spent in the server, on the network and on your machine:
"""),
    code("""
print(analysis.bottleneck(protocols))
analysis.phase_shares(protocols, by=())
"""),
    md("""
## gzip and bandwidth profiles (emulator)
The same calls through three simulated links, and with gzip off. Bandwidth and round trip are
physical: `time_scale` does not shrink them, so on a slow link the download grows to a real
share of the total, as the article describes for cross-border readers.
"""),
    code("""
runs = {}
if session.mode == "emulator":
    variants = {name: {"network": name} for name in networks}
    variants["office-100mbps, no gzip"] = {"network": "office-100mbps", "gzip": False}
    for label, options in variants.items():
        with report.open_session(provider, use_emulator=True, time_scale=time_scale, store=session.store,
                                 output_dir=session.output_dir, emulator_options=options) as s:
            plan = Plan(prompts=["a paper boat on a pond"], resolutions=[resolution],
                        repetitions=calls_per_network, provider=provider)
            runs[label] = s.sweep(plan, concurrency=1).run_id
    links = report.labelled_attempts(session.store, runs, column="network")
    display(analysis.phase_shares(links, by="network")[["network", "n", "server_s", "network_s", "client_s",
                                                        "network_share"]])
"""),
    code(
        """
plots.phase_stacked(links, by="network") if runs else plots.phase_stacked(protocols, by="http_version")
""",
        "figure",
    ),
    md("""
`bytes_down` shows what gzip does to a base64 image body: base64 spends 8 bits per 6, and gzip
wins part of that back. Whether it is worth it depends on the link: on loopback the CPU cost can win.
"""),
    code("""
links.groupby("network")[["bytes_down", "download_s", "total_s"]].mean() if runs else None
"""),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- 04
NOTEBOOKS["04-off-peak-windows.ipynb"] = [
    md("""
# 04 · Off-peak windows: when in the week is the service fastest?

**Question:** are there hours when images come back faster, so batches should run then?
The article claims US office hours (21:00-02:00 Beijing time) add 10-30 %; nobody publishes
latency by hour. A probe sends one small request every interval, for weeks.

Real weeks cannot be compressed, so this notebook probes **four virtual weeks** on the emulator
in about a minute (its clock runs tens of thousands of times faster and every record carries the
virtual time it was served at). Four weeks, because a claim about "Thursdays 15:00" needs several
Thursdays. To analyse a real probe instead, run `nbp-kit probe` for a few weeks and pass its
`probe_run_id` and `store_path` below.
"""),
    params("""\
provider = "gemini"
time_scale = 0.001         # emulator generation time factor (a 17 s image takes 17 ms)
days = 28                  # virtual days to probe: four weeks, so every hour of the week recurs 4 times
interval_min = 30          # virtual minutes between probe rounds (rounds run back to back when slower)
clock_speed = 30000        # virtual seconds per real second: four weeks in about 80 s
spend_cap_usd = 500.0      # the emulator bills nothing, but the cap is checked as for real
clock_start = "2026-01-05T00:00Z"   # a Monday
period = "day"             # "day" (24 cells, weekends included) needs fewer probes than "week" (168)
min_n = 4                  # cells with fewer probes are not judged
tz = "UTC"
probe_run_id = ""          # analyse a stored (real) probe run instead of probing
store_path = ""
"""),
    code("""
from nbp_kit import analysis, plots, presenting, report
from nbp_kit import run_probe
from nbp_kit import RunStore

report.use_inline_plotly()
if probe_run_id:
    store = RunStore(store_path or report.default_store_path(), read_only=True)
    run_id = probe_run_id
else:
    session = report.open_session(provider, use_emulator=True, time_scale=time_scale,
                                  emulator_options={"clock_start": clock_start, "clock_speed": clock_speed})
    print(session.describe())
    # No models-list request per round: every round is one generation, so more rounds fit in the minute.
    result = run_probe(session.emulator, store=session.store, interval_min=interval_min, duration_h=24 * days,
                       provider=provider, jitter_frac=0.1, spend_cap_usd=spend_cap_usd, models_request=False)
    print(f"{result.rounds} probes over {result.virtual_span_h / 24:.1f} virtual days in {result.wall_s:.0f} s "
          f"({result.stopped_reason})")
    store, run_id = session.store, result.run_id
attempts = store.attempts([run_id])
# Only generations (a real probe also times the tiny models-list request). On the emulator only the
# server's time is scaled: real_seconds scales it back, so the machine's own jitter (unscaled)
# does not weigh as much as the service's hour-of-week load.
frame = analysis.real_seconds(attempts[attempts["transport"] != "models"])
"""),
    md("""
## The heatmap
Median latency by hour of the week (rows: days). Darker red is slower. A cell shows once it
holds a probe; read single cells as noisy and the bands across days as the signal. The
emulator's default profile makes weekday 13:00-18:00 UTC 10-30 % slower, like the article's peak.
"""),
    code(
        """
plots.hour_of_week_heatmap(frame, tz=tz, min_n=1)
""",
        "figure",
    ),
    md("""
## Hour by hour
Each hour of the day against all the others (weekends included), with the median's interval and
the verdict of a rank test corrected for testing 24 hours at once.
"""),
    code("""
presenting.hours_table(analysis.hour_of_week(frame, tz=tz, period=period, min_n=min_n))
"""),
    md("""
## Recommended windows
Contiguous hours significantly faster (off-peak) or slower (peak) than the rest. Schedule batches
outside the peak windows. An empty table is the kit declining to guess, not a flat week: probe
longer (raise `days`) for a sharper answer.
"""),
    code("""
windows = analysis.offpeak_windows(frame, tz=tz, period=period, min_n=min_n)
presenting.windows_table(windows)
"""),
    code(
        """
plots.timeline(frame)
""",
        "figure",
    ),
    code("""
if not probe_run_id:
    session.close()
"""),
]

# --------------------------------------------------------------------------- 05
NOTEBOOKS["05-batch-throughput-and-grids.ipynb"] = [
    md(f"""
# 05 · Batch throughput and grids

**Questions:** how many images per minute can I get, sequentially, at a fixed concurrency and
with adaptive concurrency? And is a 2x2 grid (4 variants in one call) faster and cheaper per
image than 4 single images? The article's own batch code loops sequentially; here is what that costs.
{_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="relay", time_scale=0.02)
        + """\
concurrency_modes = [1, 4, "adaptive"]
requests_per_mode = 12
grid_repetitions = 4
spend_cap_usd = 10.0
"""
    ),
    code(_OPEN.format(extra="")),
    md("""
## Sequential vs fixed vs adaptive concurrency
The same plan three times. Adaptive concurrency (AIMD) grows while requests succeed and backs off
on 429s, so it finds the quota's ceiling without being told.
"""),
    code("""
runs = {}
for mode in concurrency_modes:
    plan = Plan(prompts=["a bowl of ramen, top view"], repetitions=requests_per_mode, provider=provider)
    result = session.sweep(plan, concurrency=mode, spend_cap_usd=spend_cap_usd)
    runs[str(mode)] = result.run_id
    print(f"concurrency={mode!s:>8}: {result.achieved_rate_per_min:6.1f} calls per service minute, "
          f"peak {result.peak_concurrency} in flight, {result.wall_s:.1f} s wall")
batch = report.labelled_attempts(session.store, runs, column="concurrency")
analysis.throughput(batch, by="concurrency")
"""),
    code(
        """
plots.throughput_curve(batch, by="concurrency")
""",
        "figure",
    ),
    md("""
## Grid vs single
A 2x2 grid is one bigger render that the kit cuts into 4 tiles. `time_ratio` and `cost_ratio`
are per image relative to 1x1: below 1 means the grid wins.
"""),
    code("""
plan = Plan(prompts=["a logo for a bakery, flat design"], grids=["1x1", "2x2"],
            repetitions=grid_repetitions, provider=provider)
grids = session.store.attempts([session.sweep(plan, spend_cap_usd=spend_cap_usd).run_id])
analysis.grid_vs_single(grids, by=())
"""),
    code(
        """
plots.pareto_scatter(grids, by="grid")
""",
        "figure",
    ),
    code(
        """
from IPython.display import HTML
HTML(report.thumbnails_html(grids, limit=4))
""",
        "image",
    ),
    md("""
Browse them: filter by config, enlarge one (a downscaled copy), see a grid's tiles, and put two
configs side by side for the same prompt.
"""),
    code("""
widgets.Gallery(grids)
"""),
    md("""
## A quota nobody told you, and an overload incident
Google publishes no images-per-minute table for Nano Banana Pro: you learn your quota from its
429s. Here an emulator of its own has a quota of 20 images per minute that the sweep is **not**
told, and an incident of "model is overloaded" 503s for the first 5 service minutes. The sweep
learns the rate from the first 429 (which states `limit: 20`), and its circuit breaker holds
calls while the incident lasts instead of burning attempts, probing now and then.
"""),
    code("""
import copy
import pandas as pd
import plotly.express as px
from nbp_kit import emulator as emulator_module, run_sweep
quota_profile = copy.deepcopy(emulator_module.load_profile("instant"))
quota_profile["quotas"] = {"rpm": None, "images_per_min": 20, "concurrent": None, "images_per_day": None}
quota_profile["incidents"] = [{"start_min": 0, "length_min": 5, "severity": 1.0}]
with emulator_module.start(quota_profile, time_scale=0.05, faults=False) as quota_emu:  # about 30 s
    learned = run_sweep(Plan(prompts=["a paper crane"], repetitions=60, provider="gemini"), quota_emu,
                        store=session.store, progress=False, save_images=False, spend_cap_usd=spend_cap_usd)
print(f"{learned.ok} ok of {learned.calls}; learned {learned.learned_rate_per_min} images/min "
      f"(the 429 stated {learned.stated_quota_per_min}); breaker opened {learned.breaker['opened']} times; "
      f"{learned.rate_limited} of {learned.attempts} attempts answered 429")
"""),
    code(
        """
minute = 60 * learned.time_scale
rate = pd.DataFrame(learned.rate_history or [(0.0, float("nan"))], columns=["s", "rate_per_min"])
rate["service_min"] = rate["s"] / minute
states = pd.DataFrame(learned.breaker["events"] or [(0.0, "closed")], columns=["s", "breaker"])
states["service_min"] = states["s"] / minute
fig = px.line(rate, x="service_min", y="rate_per_min", line_shape="hv", markers=True,
              title="learned quota rate (images per service minute) and breaker state changes")
for _, row in states.iterrows():
    fig.add_vline(x=row["service_min"], line_dash="dot", annotation_text=row["breaker"])
fig
""",
        "figure",
    ),
    md("""
When you are done browsing, `session.close()` stops the emulator and deletes the session's
temporary images (the gallery reads them when you enlarge one).
"""),
]

# --------------------------------------------------------------------------- 06
NOTEBOOKS["06-timeouts-retries-hedging.ipynb"] = [
    md(f"""
# 06 · Timeouts, retries and hedging, from data

**Questions:** how long should I wait before giving up on an image, how many retries are worth
it, and would sending a duplicate request after a delay (hedging) cut my tail latency, at what cost?
The article suggests 1K 45 s / 2K 90 s / 4K 180 s; here the advice comes from your own quantiles.

This run uses the emulator's heavy-tail profile with its random faults on, so retries and a
long tail actually happen. {_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.02)
        + """\
profile = "heavy-tail"
resolutions = ["1K", "2K"]
repetitions = 15
spend_cap_usd = 10.0
min_n = 10
"""
    ),
    code(_OPEN.format(extra=', emulator_options={"profile": profile, "faults": True}')),
    code("""
plan = Plan(prompts=["a red fox in the snow"], resolutions=resolutions, repetitions=repetitions, provider=provider)
result = session.sweep(plan, spend_cap_usd=spend_cap_usd)
frame = session.store.attempts([result.run_id])
print(f"{result.calls} calls, {result.attempts} attempts ({result.attempts - result.calls} retries or hedges), "
      f"{result.failed} failed")
frame["error_kind"].value_counts(dropna=True)
"""),
    md("""
## Attempt vs user latency
An attempt is one try; the user waits for the whole call, retries and back-off included. The
gap between the two lines in the upper tail is what retries cost your users.
"""),
    code(
        """
plots.latency_ecdf(frame, by="resolution", latency="user")
""",
        "figure",
    ),
    md("""
## Timeout advice
Per config: a per-attempt timeout from the measured tail (max(floor, 3 x P99), with its
interval), the retries to allow, and the simulated share of calls that would still fail, beside
the article's fixed table replayed on the same data. Attempts that timed out or were cancelled
count as censored, so a tail your old deadline cut does not pull the advice down; `cut_note`
says how many recorded attempts each candidate timeout would have cut. Where the P99 lies beyond
the longest time seen (`quantile_beyond_data`), the timeout is a lower bound: collect more calls.
"""),
    code("""
analysis.recommend_timeouts(frame, by="resolution", min_n=min_n)
"""),
    md("""
## Hedging what-if
Replays the measured latencies: fire a copy after the P90/P95/P99 and keep the first answer.
The hedge delay is chosen on one half of the calls and judged on the other, every policy is
replayed on the same draws, and the `_lo`/`_hi` columns are bootstrap intervals: a P95 gain
whose interval reaches zero is not a gain you can count on. Each copy is a billed image, so read
the gain against `extra_requests`; configs with fewer than `min_n` successes are left out.
"""),
    code("""
analysis.hedging_whatif(frame, by="resolution", min_n=min_n)
"""),
    code(
        """
plots.hedging_tradeoff(frame, by="resolution", min_n=min_n)
""",
        "figure",
    ),
    code(
        """
plots.timeline(frame)
""",
        "figure",
    ),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- 07
NOTEBOOKS["07-provider-comparison.ipynb"] = [
    md(f"""
# 07 · Native API vs relay: latency and price per image

**Question:** is an OpenAI-compatible relay faster or cheaper per image than Google's own API?
The article's relay quotes $0.05 per image against Google's $0.134 (1K/2K) and $0.24 (4K).
With keys for both (`GEMINI_API_KEY`, and `NBP_KIT_RELAY_BASE_URL` + `NBP_KIT_RELAY_KEY`) this
compares the real services; otherwise both run on the emulator, where prices come from
`data/prices.json`. {_REAL_KEY_NOTE}
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.02)
        + """\
resolutions = ["1K", "2K"]
repetitions = 6
spend_cap_usd = 10.0
"""
    ),
    code(_OPEN.format(extra="")),
    code("""
runs = {}
for name in session.providers:
    plan = Plan(prompts=["a vintage travel poster of Lisbon"], resolutions=resolutions,
                repetitions=repetitions, provider=name)
    runs[name] = session.sweep(plan, spend_cap_usd=spend_cap_usd).run_id
both = session.store.attempts(list(runs.values()))
analysis.summarize(both, by=["provider", "resolution"], latency="user", min_n=5)[
    ["provider", "resolution", "n", "success_rate", "mean", "p50", "p95"]]
"""),
    code(
        """
plots.latency_box(both, by=["provider", "resolution"])
""",
        "figure",
    ),
    md("""
## Price per delivered image
All recorded cost (billed failures and thinking tokens included) divided by images delivered.
"""),
    code("""
analysis.cost_latency(both, by=["provider", "resolution"])
"""),
    code(
        """
plots.pareto_scatter(both, by=["provider", "resolution"])
""",
        "figure",
    ),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- 08
NOTEBOOKS["08-interactive-vs-batch.ipynb"] = [
    md(f"""
# 08 · Interactive or batch: cost, turnaround and the risk of a job that never runs

**Question:** for a bulk job (a catalogue, a data set), is Google's Batch API worth it? It costs
half the interactive price and targets 24 hours; users report turnarounds of minutes, or a job
left PENDING for two days and then EXPIRED. This runs one plan interactively and as several
batch jobs, then compares cost per image, images per dollar and turnaround, and answers
"N images by a deadline: which mode, at what cost and risk?". {_REAL_KEY_NOTE}
On the emulator the batch queue is profile data: `stuck_prob` is the share of jobs left
PENDING until they expire at 48 h (service time).
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.002)
        + """\
resolution = "1K"
images_per_job = 10
jobs = 6
interactive_repetitions = 3
queue_median_s = 600      # emulator: typical wait before a batch job starts (service seconds)
stuck_prob = 0.1          # emulator: share of batch jobs that stay PENDING and expire
n_images = 5000           # the question: this many images ...
deadline_h = 24           # ... within this many hours
spend_cap_usd = 5.0
"""
    ),
    code("""
import time

from nbp_kit import plots, report
from nbp_kit.analysis import modes
from nbp_kit.runs import batch
from nbp_kit.emulator import load_profile
from nbp_kit import Plan

report.use_inline_plotly()
profile = {**load_profile("default"),
           "batch": {"queue_median_s": queue_median_s, "queue_sigma": 1.5, "stuck_prob": stuck_prob}}
session = report.open_session(provider, use_emulator=use_emulator, time_scale=time_scale,
                              emulator_options={"profile": profile})
print(session.describe())
base_url = session.emulator.base_url if session.emulator else "https://generativelanguage.googleapis.com"
api_key = session.emulator.api_key if session.emulator else None
"""),
    md("""
## The same plan, both ways
Interactive calls run through the tuned client; each batch job is one `submit_batch`, polled
with back-off (every 30 s, growing to 10 min, scaled by the emulator's time scale) and
collected into the same store, one attempt per image, at the batch price. A job still not done
at the deadline has missed it: it is cancelled and its images are recorded as
`batch_cancelled`, like those of a job that expired.
"""),
    code("""
plan = Plan(prompts=[f"product photo {i} of a ceramic mug on a white table" for i in range(images_per_job)],
            resolutions=[resolution])
interactive = session.sweep(Plan(prompts=list(plan.prompts), resolutions=[resolution],
                                 repetitions=interactive_repetitions), spend_cap_usd=spend_cap_usd)
poll = {"poll_s": 30 * session.time_scale, "max_poll_s": 600 * session.time_scale}
run_ids = [batch.submit_batch(plan, base_url=base_url, store=session.store, api_key=api_key,
                              output_dir=session.output_dir, spend_cap_usd=spend_cap_usd) for _ in range(jobs)]
deadline_at = time.monotonic() + deadline_h * 3600 * session.time_scale
for run_id in run_ids:
    status = batch.wait_batch(session.store, run_id, api_key=api_key, base_url=base_url,
                              timeout_s=max(0.0, deadline_at - time.monotonic()), **poll)
    if not status.done:  # past the deadline: it missed, whatever it does later
        batch.cancel_batch(session.store, run_id, api_key=api_key, base_url=base_url)
    print(batch.collect_batch(session.store, run_id, api_key=api_key, base_url=base_url))
frame = session.store.attempts([interactive.run_id, *run_ids])
"""),
    md("""
## Cost per image and turnaround per mode
Cost counts everything recorded (failed calls that were billed too) per delivered image.
Turnaround is per call for interactive and per *job* for batch (a job's images arrive
together), in service seconds (on the emulator, measured seconds / `time_scale`: the network
and the client's own work are not scaled, so keep `time_scale` at 0.002 or above).
"""),
    code("""
modes.mode_summary(frame)
"""),
    code(
        """
plots.mode_turnaround_figure(frame)
""",
        "figure",
    ),
    md("""
## N images by a deadline
Interactive: rounds of calls at the client's concurrency, finish time approximately normal.
Batch: the share of past jobs that missed the deadline (expired ones included), with a
Clopper-Pearson 95 % upper bound, since a handful of jobs says little about a rare stall.
"""),
    code("""
advice = modes.recommend_mode(frame, n_images=n_images, deadline_s=deadline_h * 3600)
print(advice)
advice.as_frame()
"""),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- 09
NOTEBOOKS["09-editing-latency.ipynb"] = [
    md(f"""
# 09 · Editing latency: reference images, uploads and turns

**Question:** what does each reference image add to an edit, is it the upload or the model, and
what do the turns of an editing chat cost?

Reference images travel inline as base64 in the request (up to 14, 20 MB per request): their
upload is the `send` phase. Each later turn of an editing chat replays the history, the model's
images and their thought signatures included, so uploads grow turn by turn. {_REAL_KEY_NOTE}

On the emulator, the extra generation time per reference comes from the profile's `editing`
block: **an assumption** (there are no published figures), printed below; only your own
measurements against the real service say what the model really adds.
"""),
    params(
        _COMMON_PARAMS.format(provider="gemini", time_scale=0.02)
        + """\
resolution = "1K"
reference_sets = ["0x0", "2x256", "4x512"]   # COUNTxSIDE: synthetic references per request
repetitions = 3
turns = 3                                     # turns of one editing chat
slow_link = "cross-border-8mbps"              # emulator only: a link where uploads show
slow_link_sets = ["1x256", "2x512"]
downscale_to_px = 256
spend_cap_usd = 3.0
"""
    ),
    code(_OPEN.format(extra="")),
    code("""
if session.mode == "emulator":
    print("reference time on this emulator (assumption):", session.emulator.app.profile.get("editing"))
"""),
    md("""
## Reference count and size
One sweep over the reference sets: every request sends that many synthetic images of that side.
"""),
    code("""
plan = Plan(prompts=["place the products on a wooden shelf"], resolutions=[resolution],
            reference_images=reference_sets, repetitions=repetitions, provider=provider)
print(plan.preflight(time_scale=time_scale))
run = session.sweep(plan, concurrency=2, spend_cap_usd=spend_cap_usd)
refs = session.store.attempts(run.run_id)
refs["references"] = [f"{n}x{round((p / n) ** 0.5) if n else 0}" for n, p in zip(refs["input_images"], refs["input_pixels"].fillna(0))]
refs.groupby("references")[["input_bytes", "bytes_up", "prompt_tokens", "send_s", "wait_s", "total_s"]].median()
"""),
    code(
        """
plots.phase_stacked(refs, by="references")
""",
        "figure",
    ),
    md("""
`prompt_tokens` grows by 560 per reference image (how the service bills input images). On a
fast link the upload is a sliver; the `wait` bar holds the model's extra time.

## Upload or model? A slow link (emulator)
The same kind of requests through an 8 Mbps link. The client keeps a small socket send buffer
(`send_buffer_bytes`) so `send_s` is the upload as the link carried it rather than the moment the
kernel took a copy of it.
"""),
    code("""
slow = None
if session.mode == "emulator":
    from nbp_kit.runs.editing import synthetic_references
    with report.open_session(provider, use_emulator=True, time_scale=time_scale, store=session.store,
                             output_dir=session.output_dir, emulator_options={"network": slow_link}) as s:
        c = s.client(send_buffer_bytes=64 * 1024)
        for label in slow_link_sets:
            n, side = (int(v) for v in label.split("x"))
            c.generate("place the products on a wooden shelf", ImageSpec(resolution=resolution),
                       images=list(synthetic_references(n, side)))
        slow = s.store.attempts()
        slow = slow[(slow["base_host"] == c.base_host) & (slow["input_images"] > 0)]  # this link's calls only
    display(analysis.editing_breakdown(slow))
"""),
    code(
        """
plots.phase_stacked(slow if slow is not None and len(slow) else refs, by="input_images")
""",
        "figure",
    ),
    md("""
## Advice from these measurements
The measured upload rate turns into two numbers: what downscaling the references saves per
request, and after how many uses uploading them once through the Files API beats re-sending them
inline (the Files API sends raw bytes once; inline sends base64 every time).
"""),
    code("""
advice = analysis.editing_advice(slow if slow is not None and len(slow) else refs, downscale_to_px=downscale_to_px)
for sentence in advice.sentences:
    print(sentence)
"""),
    md("""
## Turns of an editing chat
An `EditSession` keeps the history with the model's thought signatures exactly as returned; each
turn is an attempt with `session_id` and `turn`. Watch `bytes_up`: every turn re-sends the images
before it.
"""),
    code("""
from nbp_kit import EditSession
from nbp_kit.runs.editing import EDIT_PROMPTS, synthetic_references

chat = EditSession(session.client(), ImageSpec(resolution=resolution))
chat.send("a red bicycle leaning on a wall", images=list(synthetic_references(1, 256)))
for prompt in EDIT_PROMPTS[: turns - 1]:
    chat.send(prompt)
turns_df = session.store.attempts()
turns_df = turns_df[turns_df["session_id"] == chat.session_id].sort_values("turn")
turns_df[["turn", "input_images", "bytes_up", "prompt_tokens", "send_s", "wait_s", "total_s"]]
"""),
    code(
        """
from IPython.display import Image as _Image, display
from nbp_kit.client.images import thumbnail
for g in chat.generations:
    display(_Image(data=thumbnail(g.image, max_side=160)))
""",
        "image",
    ),
    md("""
Before/after, turn by turn: each image is the previous one edited. A chat that loses the model's
thought signatures is refused by the service (`400 INVALID_ARGUMENT "Image part is missing a
thought_signature ..."`); `EditSession` never drops them.
"""),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- report
NOTEBOOKS["report.ipynb"] = [
    md("""
# nbp_kit run report

The answer first (what was run, the bottleneck, the configuration to use, how the article's
figures hold up, the timeout to set and what the data cannot yet say), then the evidence.
Regenerate it with `nbp-kit report RUN_ID`; run on its own it reports the newest run in the
default store.
"""),
    params("""
run_id = ""       # the run to report on; empty means the newest run in the store
store_path = ""   # the run store (SQLite); empty means the default store
"""),
    code("""
from IPython.display import HTML, display
from nbp_kit import plots, presenting, report

report.use_inline_plotly()  # plotly.js inline once: the HTML works offline
run = report.load_run(run_id, store_path)
run
"""),
    code("""
answer = run.answer() if run.found else None
answer
"""),
    md("""
## The evidence
Latency by configuration, in seconds a user would wait (for emulator runs: real-equivalent,
the server's scaled time divided by the time scale, as stated above). Look at P95: that is what
your users wait for on a bad day. Groups too small for an interval say so.
"""),
    code("""
presenting.summary_rows(run.frame) if run.found else None
"""),
    code(
        """
plots.latency_box(run.latency) if run.found else None
""",
        "figure",
    ),
    md("""
### Knob effects and the article's table
Each knob compared within the others' levels; the verdict says whether the interval rules an
effect in or out. The article's published figures beside the measured ones with their intervals.
"""),
    code("""
presenting.effects_table(answer.effects) if run.found else None
"""),
    code("""
presenting.reference_table(answer.reference) if run.found else None
"""),
    md("""
### Where the time goes
Mean seconds per phase (for emulator runs the server's part in real-equivalent seconds; network
and client time as measured): `wait` is the server generating plus one round trip, `download`
the image transfer, the rest set-up and your machine.
"""),
    code(
        """
plots.phase_stacked(run.latency) if run.found else None
""",
        "figure",
    ),
    md("""
### Images
A few of the run's images as small thumbnails (never the full files), labelled with their
configuration, real-equivalent latency and cost.
"""),
    code(
        """
HTML(report.thumbnails_html(run.frame, limit=8)) if run.found else None
""",
        "image",
    ),
    md("""
## Run metadata
What was measured, against which host and clock, and the plan as its knobs.
"""),
    code("""
HTML(run.metadata_html()) if run.found else None
"""),
    code("""
HTML(report.environment_html())
"""),
]

# --------------------------------------------------------------------------- 10
NOTEBOOKS["10-regions.ipynb"] = [
    md("""
# 10 · Does latency depend on where you call from? Regions from a multi-worker run

**Question:** the seed article reports +3-8 s for readers calling from China. Is my latency a
property of the service, or of where I call it from?

Workers on several machines drain one *shared run* from a PostgreSQL team store
(`docs/team-store.md`); each attempt records its worker, host and `region`. This notebook
compares the regions: latency with confidence intervals, where the time goes, and the
difference from a baseline region.

- `store_url` and `run_id` set: compare that shared run.
- `store_url` set, no `run_id`: make a small shared run now, against three emulator front
  doors with different network profiles (one per region), drained by three workers in this kernel.
- neither: read the sample shipped with the kit (a run of 3 workers recorded the same way).
"""),
    params("""
store_url = ""         # a postgresql:// team store; empty: the shipped sample
run_id = ""            # a shared run in that store; empty (with a store): make one here on the emulator
regions = {"eu-west": "loopback", "us-east": "office-100mbps", "ap-south": "cross-border-8mbps"}
repetitions = 10       # per prompt (3 prompts) for a run made here
time_scale = 0.02      # emulator only
baseline = "eu-west"
min_n = 10
"""),
    code("""
import threading

from nbp_kit import Plan, RunStore, emulator, plots, report
from nbp_kit.analysis.regions import compare_regions, sample_frame
from nbp_kit.runs.worker import run_worker, share_run

report.use_inline_plotly()
if not store_url:
    frame, source = sample_frame(), "the shipped sample (data/samples/regions-3-workers.parquet)"
elif run_id:
    frame, source = RunStore(store_url, read_only=True).attempts(run_ids=[run_id]), f"run {run_id}"
else:
    # One service reached over three network paths: an emulator front door per region.
    doors = {r: emulator.start(time_scale=time_scale, faults=False, quotas=False, network=n) for r, n in regions.items()}
    store = RunStore(store_url)
    plan = Plan(prompts=["a paper boat on a pond", "a red fox in snow", "a lighthouse at dusk"],
                resolutions=["1K"], repetitions=repetitions)
    run_id = share_run(plan, store, spend_cap_usd=20.0, time_scale=time_scale)
    workers = [threading.Thread(target=run_worker, args=(run_id, store_url, doors[r]),
                                kwargs={"region": r, "concurrency": 2, "lease_s": 30}) for r in regions]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for door in doors.values():
        door.stop()
    frame, source = store.attempts(run_ids=[run_id]), f"run {run_id}, made here"
print(f"{len(frame)} attempts from {source}")
frame.groupby("region").agg(attempts=("attempt_id", "size"), ok=("status", lambda s: int((s == "ok").sum())),
                            workers=("worker_id", "nunique"), hosts=("host", "nunique"))
"""),
    md("""
## Regions side by side
Median and P95 of attempt latency with 95 % intervals, the server / network / client shares of
the time, and each region's difference from the baseline with its interval and a verdict.
"""),
    code("""
comparison = compare_regions(frame, baseline=baseline, min_n=min_n)
comparison[["region", "n", "success_rate", "p50", "p50_lo", "p50_hi", "p95", "server_share", "network_share",
            "median_diff_s", "median_diff_lo", "median_diff_hi", "verdict"]]
"""),
    code(
        """
plots.latency_box(frame, by="region")
""",
        "figure",
    ),
    md("""
Where the time goes per region: if a region is slower because of its path, the extra time is
in the network phases (connect, TLS, download), not in the server's generation.
"""),
    code(
        """
plots.phase_stacked(frame, by="region")
""",
        "figure",
    ),
    md("""
With a real run over days, `nbp_kit.analysis.regions.offpeak_by_region(frame)` finds each region's
off-peak hours (notebook 04 explains the method).
"""),
]


def build(names: list[str] | None = None) -> list[Path]:
    """Write the named notebooks (all by default); returns the paths written."""
    written = []
    for name in NOTEBOOKS:
        if names and name not in names:
            continue
        path = HERE / name
        text = render(name)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def render(name: str) -> str:
    """The file text of one notebook (stable cell ids, so re-generated files are identical)."""
    nb = new_notebook(cells=[nbformat.from_dict(c) for c in NOTEBOOKS[name]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem.replace('.', '-')}-{i:02d}"
    return nbformat.writes(nb) + "\n"


if __name__ == "__main__":
    for p in build(sys.argv[1:] or None):
        print(p.relative_to(HERE.parent))
