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
    params(_COMMON_PARAMS.format(provider="gemini", time_scale=0.02) + """\
prompt = "an orange cat asleep on a sunny window sill, soft morning light"
resolution = "1K"
aspect_ratio = "1:1"
"""),
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
    code("""
report.show_image(gen.image_path)
""", "image"),
    md("""
## Its phase waterfall
Read it left to right: `connect` and `tls` are paid once per connection, `wait` is the
server generating plus one round trip, `download` is the image crossing the network, and
`decode`/`save` are your machine. On almost every setup `wait` dominates: the model is the bottleneck.
"""),
    code("""
plots.phase_waterfall(session.store.attempts())
""", "figure"),
    md("""
## A second call on the warm connection
The client keeps one long-lived connection pool, so the second request skips `connect` and `tls`.
Compare the two bars: the difference is the set-up cost you save per request with keep-alive.
"""),
    code("""
client.generate(prompt, ImageSpec(resolution=resolution, aspect_ratio=aspect_ratio))
attempts = session.store.attempts()
plots.phase_stacked(attempts, by="connection_reused")
""", "figure"),
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
    params(_COMMON_PARAMS.format(provider="relay", time_scale=0.02) + """\
resolutions = ["1K", "2K", "4K"]
thinking_levels = ["low", "high"]
prompts = ["a lighthouse on a cliff at dusk, oil painting"]
repetitions = 5
concurrency = "adaptive"
spend_cap_usd = 10.0
min_n = 5                  # groups smaller than this get no interval (say so rather than guess)
"""),
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
    code("""
plots.latency_box(frame)
""", "figure"),
    md("""
## Knob effects
Each knob is compared within the other knobs' levels, so resolution cannot pose as a thinking
effect. Read the `verdict` column: "no detectable effect" means the interval contains zero.
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
    code("""
plots.pareto_scatter(frame)
""", "figure"),
    md("""
## The images
A few of the sweep's images with their configuration and latency (thumbnails only).
"""),
    code("""
from IPython.display import HTML
HTML(report.thumbnails_html(frame, limit=6))
""", "image"),
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
    params(_COMMON_PARAMS.format(provider="gemini", time_scale=0.02) + """\
resolution = "1K"
calls_per_client = 4       # sequential calls on one client: the first is cold, the rest warm
networks = ["loopback", "office-100mbps", "cross-border-8mbps"]
calls_per_network = 3
"""),
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
    code("""
plots.phase_stacked(protocols, by=["http_version", "connection_reused"])
""", "figure"),
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
    code("""
plots.phase_stacked(links, by="network") if runs else plots.phase_stacked(protocols, by="http_version")
""", "figure"),
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
latency by hour. A probe sends one small request every interval, for days.

A real week cannot be compressed, so this notebook runs a **virtual week** on the emulator
(its clock runs thousands of times faster and every record carries the virtual time it was
served at). To analyse a real probe instead, run `nbp-kit probe` for a week and pass its
`probe_run_id` and `store_path` below.
"""),
    params("""\
provider = "gemini"
time_scale = 0.005         # emulator generation time factor
days = 7                   # virtual days to probe
interval_min = 60          # virtual minutes between probe rounds
clock_speed = 28800        # virtual seconds per real second (8 h per second)
spend_cap_usd = 50.0       # the emulator bills nothing, but the cap is checked as for real
clock_start = "2026-01-05T00:00Z"   # a Monday
period = "day"             # "day" (24 cells) needs fewer probes than "week" (168)
min_n = 4                  # cells with fewer probes are not judged
tz = "UTC"
probe_run_id = ""          # analyse a stored (real) probe run instead of probing
store_path = ""
"""),
    code("""
from nbp_kit import analysis, plots, report
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
    result = run_probe(session.emulator, store=session.store, interval_min=interval_min, duration_h=24 * days,
                       provider=provider, jitter_frac=0.1, spend_cap_usd=spend_cap_usd)
    print(f"{result.rounds} rounds, {result.ok} ok, {result.virtual_span_h:.0f} virtual hours in {result.wall_s:.1f} s "
          f"({result.stopped_reason})")
    store, run_id = session.store, result.run_id
attempts = store.attempts([run_id])
# Each round also times the tiny models-list request (network only); the windows are about generations.
# On the emulator only the server's time is scaled: scale it back so the machine's own jitter
# (unscaled) does not weigh as much as the service's hour-of-week load.
frame = analysis.real_seconds(attempts[attempts["transport"] != "models"])
"""),
    md("""
## The heatmap
Median latency by hour (rows: days of the week). Darker is slower. On the emulator the default
profile makes weekday 13:00-18:00 UTC 10-30 % slower, like the article's peak.
"""),
    code("""
plots.hour_of_week_heatmap(frame, tz=tz)
""", "figure"),
    code("""
analysis.hour_of_week(frame, tz=tz, period=period, min_n=min_n)
"""),
    md("""
## Recommended windows
Contiguous hours significantly faster (off-peak) or slower (peak) than the overall median,
corrected for testing many hours at once. Schedule batches in the off-peak windows.

With one probe an hour for a week, each hour-of-day cell holds about seven probes, so the
intervals are wide and the table may well be empty: that is the kit declining to guess, not
a flat week. For a sharper answer raise `days` (a month) or lower `interval_min`; the run
takes proportionally longer.
"""),
    code("""
analysis.offpeak_windows(frame, tz=tz, period=period, min_n=min_n)
"""),
    code("""
plots.timeline(frame)
""", "figure"),
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
    params(_COMMON_PARAMS.format(provider="relay", time_scale=0.02) + """\
concurrency_modes = [1, 4, "adaptive"]
requests_per_mode = 12
grid_repetitions = 4
spend_cap_usd = 10.0
"""),
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
    code("""
plots.throughput_curve(batch, by="concurrency")
""", "figure"),
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
    code("""
plots.pareto_scatter(grids, by="grid")
""", "figure"),
    code("""
from IPython.display import HTML
HTML(report.thumbnails_html(grids, limit=4))
""", "image"),
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
    code("""
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
""", "figure"),
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
    params(_COMMON_PARAMS.format(provider="gemini", time_scale=0.02) + """\
profile = "heavy-tail"
resolutions = ["1K", "2K"]
repetitions = 15
spend_cap_usd = 10.0
min_n = 10
"""),
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
    code("""
plots.latency_ecdf(frame, by="resolution", latency="user")
""", "figure"),
    md("""
## Timeout advice
Per config: a per-attempt timeout from the measured tail (max(floor, 3 x P99)), the retries to
allow, and the simulated share of calls that would still fail. Replace the article's table with this.
"""),
    code("""
analysis.recommend_timeouts(frame, by="resolution", min_n=min_n)
"""),
    md("""
## Hedging what-if
Replays the measured latencies: fire a copy after the P90/P95/P99 and keep the first answer.
Each copy is a billed image, so read the P95 gain against `extra_requests`.
"""),
    code("""
analysis.hedging_whatif(frame, by="resolution", min_n=min_n)
"""),
    code("""
plots.hedging_tradeoff(frame, by="resolution", min_n=min_n)
""", "figure"),
    code("""
plots.timeline(frame)
""", "figure"),
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
    params(_COMMON_PARAMS.format(provider="gemini", time_scale=0.02) + """\
resolutions = ["1K", "2K"]
repetitions = 6
spend_cap_usd = 10.0
"""),
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
    code("""
plots.latency_box(both, by=["provider", "resolution"])
""", "figure"),
    md("""
## Price per delivered image
All recorded cost (billed failures and thinking tokens included) divided by images delivered.
"""),
    code("""
analysis.cost_latency(both, by=["provider", "resolution"])
"""),
    code("""
plots.pareto_scatter(both, by=["provider", "resolution"])
""", "figure"),
    code("""
session.close()
"""),
]

# --------------------------------------------------------------------------- report
NOTEBOOKS["report.ipynb"] = [
    md("""
# nbp_kit run report

A reproducible write-up of one run: what was asked, how long each configuration took and
where the time went, a few of the images, and the environment that produced the numbers.
Regenerate it with `nbp-kit report RUN_ID`.
"""),
    params("""
run_id = ""       # the run to report on
store_path = ""   # the run store (SQLite); empty means the default store
"""),
    code("""
from IPython.display import HTML, Markdown, display
from nbp_kit import analysis, plots, report
from nbp_kit import RunStore

report.use_inline_plotly()  # plotly.js inline once: the HTML works offline
store = RunStore(store_path or report.default_store_path(), read_only=True)
frame = store.attempts([run_id])
meta = report.run_metadata(store, run_id)
display(Markdown(f"**Run `{run_id}`**: {meta['attempts']} attempts, {meta.get('ok', 0)} succeeded, "
                 f"{meta.get('errors', 0)} failed, recorded cost ${meta.get('cost_usd', 0):.2f}."))
"""),
    md("""
## Run metadata
What was measured, against which host and clock. Against the emulator `clock` is `scaled` and
`time_scale` gives the factor: latencies are the emulator's model, not the real service's.
"""),
    code("""
report.metadata_table(meta)
"""),
    md("""
## Latency by configuration
Percentiles with confidence intervals (none for groups too small to say). Look at P95: that is
what your users wait for on a bad day.
"""),
    code("""
report.summary_table(frame)
"""),
    code("""
plots.latency_box(frame)
""", "figure"),
    md("""
## Where the time goes
Mean seconds per phase: `wait` is the server generating plus one round trip, `download` the
image transfer, the rest set-up and your machine.
"""),
    code("""
print(analysis.bottleneck(frame))
plots.phase_stacked(frame)
""", "figure"),
    md("""
## Images
A few of the run's images as small thumbnails (never the full files), labelled with their
configuration and latency.
"""),
    code("""
HTML(report.thumbnails_html(frame, limit=8))
""", "image"),
    md("""
## Environment
"""),
    code("""
report.metadata_table(report.environment())
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
