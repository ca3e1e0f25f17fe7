"""``nbp-kit``: the command line, a thin client of the library.

::

    nbp-kit emulator --time-scale 0.02            # serve the emulator in the foreground
    nbp-kit sweep --emulator --prompt "a cat" --resolution 1K,2K --repetitions 3
    nbp-kit sweep --plan plan.toml --base-url https://generativelanguage.googleapis.com --spend-cap 5
    nbp-kit sweep --run-id RUN_ID --emulator       # resume: only what is missing
    nbp-kit probe --emulator --clock-speed 2016 --duration-h 168 --interval-min 30
    nbp-kit runs list | runs tag RUN TAG | runs delete RUN --yes
    nbp-kit export RUN out.parquet
    nbp-kit demo                                    # emulator + small sweep + phase table (+ report)
    nbp-kit report RUN
    nbp-kit sweep --store postgresql://db/runs --prompt "a cat" --repetitions 50 --share   # a shared run
    nbp-kit worker RUN_ID --store postgresql://db/runs --base-url URL --region eu-west     # on each machine
    nbp-kit batch submit|status|collect|cancel     # a plan as one Batch API job (nbp_kit.runs.batch)

Exit codes: 0 ok, 2 bad input, 3 spend cap, 4 the run had failures beyond the threshold,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import ConfigError, NbpError, SpendCapExceeded, StoreError
from .spec import MODELS

EXIT_OK, EXIT_BAD_INPUT, EXIT_SPEND_CAP, EXIT_FAILURES, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--resolution 1K,2K --resolution 4K`` -> ['1K', '2K', '4K']."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _concurrency(text: str) -> int | str:
    if text == "adaptive":
        return "adaptive"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"concurrency={text!r} is not accepted; use a whole number or 'adaptive'"
        ) from None


def _common(parser: argparse.ArgumentParser) -> None:
    from .runs.store import DEFAULT_STORE_PATH

    parser.add_argument(
        "--store",
        default=str(DEFAULT_STORE_PATH),
        help=f"run store: an SQLite file path or a postgresql:// URL for a team store "
        f"(default {DEFAULT_STORE_PATH}; NBP_KIT_RUNS moves it)",
    )


def _emulator_options(parser: argparse.ArgumentParser, *, time_scale: float = 0.02) -> None:
    g = parser.add_argument_group("target")
    g.add_argument("--emulator", action="store_true", help="start an embedded emulator and run against it")
    g.add_argument(
        "--base-url", default=None, help="a real service's base URL (key from GEMINI_API_KEY / NBP_KIT_RELAY_KEY)"
    )
    g.add_argument("--profile", default="default", help="emulator latency profile (with --emulator)")
    g.add_argument("--time-scale", type=float, default=time_scale, help=f"emulator time scale (default {time_scale})")
    g.add_argument("--no-faults", action="store_true", help="emulator: no random faults")
    g.add_argument("--no-quotas", action="store_true", help="emulator: no quota 429s")


def build_parser() -> argparse.ArgumentParser:
    """The ``nbp-kit`` argument parser (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="nbp-kit",
        description="Measure and tune Nano Banana Pro latency.",
        epilog="exit codes: 0 ok, 2 bad input, 3 spend cap, 4 failures beyond threshold, 130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "emulator",
        help="run the API emulator in the foreground",
        description="Run the Nano Banana Pro API emulator until Ctrl-C.",
    )
    try:
        from .emulator import add_arguments

        add_arguments(p)
    except ImportError:  # pragma: no cover - the emulator ships with the kit
        pass

    p = sub.add_parser(
        "sweep",
        help="run a sweep (flags or --plan file); --run-id resumes",
        description="Run a plan: the cross product of the knobs, repeated, shuffled per block.",
    )
    _common(p)
    g = p.add_argument_group("plan")
    g.add_argument("--plan", default=None, help="plan file (.json or .toml) with Plan fields")
    g.add_argument("--prompt", action="append", help="a prompt (repeat for several)")
    g.add_argument("--resolution", action="append", help="1K, 2K, 4K (comma list or repeat)")
    g.add_argument("--thinking", action="append", help="thinking levels; 'default' sends none")
    g.add_argument("--aspect", action="append", help="aspect ratios, e.g. 1:1,16:9")
    g.add_argument("--grid", action="append", help="1x1, 2x2, 3x3")
    g.add_argument("--transport", action="append", help="unary, stream")
    g.add_argument("--repetitions", type=int, default=None, help="repetitions (blocks), default 1")
    g.add_argument("--seed", type=int, default=None, help="shuffle seed, default 0")
    g.add_argument("--model", default=None, help="model id")
    g.add_argument("--provider", default=None, choices=("gemini", "relay"), help="provider (default gemini)")
    g = p.add_argument_group("run")
    g.add_argument("--run-id", default=None, help="resume this run (only items without a success run again)")
    g.add_argument("--spend-cap", type=float, default=None, help="refuse or stop past this many USD (default 2.0)")
    g.add_argument("--concurrency", type=_concurrency, default="adaptive", help="N or 'adaptive' (default)")
    g.add_argument("--max-concurrency", type=int, default=16, help="cap for adaptive concurrency (default 16)")
    g.add_argument("--rate", type=float, default=None, help="requests per minute (bucket, or open-loop arrival rate)")
    g.add_argument("--images-per-min", type=float, default=None, help="images-per-minute bucket")
    g.add_argument(
        "--spend-rate",
        type=_spend_rate,
        default=None,
        metavar="USD|tier1|tier2|tier3",
        help="dollars per rolling 10 minutes (tier presets: $10, $50, $200)",
    )
    g.add_argument(
        "--fallback-model",
        default=None,
        choices=MODELS,
        help="while an overload incident holds the model (circuit breaker open), send calls to this one "
        "instead of waiting, e.g. gemini-3.1-flash-image-preview (default: wait)",
    )
    g.add_argument("--arrival", default="closed", choices=("closed", "fixed", "poisson"), help="loop kind")
    g.add_argument("--max-error-rate", type=float, default=0.5, help="stop above this error share (default 0.5)")
    g.add_argument("--output-dir", default=None, help="image folder (default data/runs/images)")
    g.add_argument("--tag", action="append", default=[], help="tag the run")
    g.add_argument("--dry-run", action="store_true", help="print the pre-flight and stop")
    g.add_argument(
        "--share",
        action="store_true",
        help="create a shared run in a PostgreSQL --store and stop; workers drain it (nbp-kit worker)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    _emulator_options(p)

    p = sub.add_parser(
        "worker",
        help="join a shared run from this machine (PostgreSQL store)",
        description="Claim and run a shared run's items until none is left; several workers on "
        "several machines share its quota and spend cap through the store.",
    )
    _common(p)
    p.add_argument("run_id", help="the shared run (nbp-kit sweep ... --share prints it)")
    p.add_argument("--region", default=None, help="a label for this vantage point, recorded on every attempt")
    p.add_argument(
        "--base-url", default=None, help="the service's base URL (key from GEMINI_API_KEY / NBP_KIT_RELAY_KEY)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="calls in flight from this worker (default 4)")
    p.add_argument("--lease-s", type=float, default=120.0, help="seconds a claim holds without renewal (default 120)")
    p.add_argument("--output-dir", default=None, help="image folder on this machine (default data/runs/images)")

    p = sub.add_parser(
        "probe",
        help="low-rate long-horizon probing into the store",
        description="Probe every N minutes (virtual minutes against a fast emulator clock).",
    )
    _common(p)
    p.add_argument("--interval-min", type=float, default=30.0, help="minutes between rounds (default 30)")
    p.add_argument("--jitter", type=float, default=0.2, help="+/- share of jitter (default 0.2)")
    p.add_argument("--rounds", type=int, default=None, help="stop after this many rounds")
    p.add_argument("--duration-h", type=float, default=None, help="stop after this many (virtual) hours")
    p.add_argument("--resolution", action="append", help="configs to probe (default 1K)")
    p.add_argument("--prompt", default=None, help="the probe prompt")
    p.add_argument("--spend-cap", type=float, default=None, help="USD cap (default 2.0)")
    p.add_argument("--clock-start", default=None, help="emulator virtual clock start (ISO date)")
    p.add_argument("--clock-speed", type=float, default=1.0, help="emulator virtual seconds per real second")
    _emulator_options(p, time_scale=1.0)

    p = sub.add_parser("runs", help="list, show, tag or delete runs", description="Manage stored runs.")
    _common(p)
    p.add_argument("action", nargs="?", default="list", choices=("list", "show", "tag", "delete"))
    p.add_argument("run_id", nargs="?", help="run id (show, tag, delete)")
    p.add_argument("tag", nargs="?", help="tag (tag)")
    p.add_argument("--yes", action="store_true", help="confirm delete")

    p = sub.add_parser(
        "export",
        help="export a run's attempts to .parquet or .csv",
        description="Write a run's tidy attempts frame to Parquet or CSV.",
    )
    _common(p)
    p.add_argument("run_id")
    p.add_argument("path", help="output path ending in .parquet or .csv")

    p = sub.add_parser(
        "demo",
        help="emulator + small sweep + phase table (+ HTML report)",
        description="Start an embedded emulator, run a small sweep, print where the time goes.",
    )
    _common(p)
    p.add_argument("--time-scale", type=float, default=0.02, help="emulator time scale (default 0.02)")
    p.add_argument("--repetitions", type=int, default=3, help="repetitions (default 3)")
    p.add_argument("--output-dir", default=None, help="image folder")
    p.add_argument("--no-report", action="store_true", help="skip the HTML write-up")

    p = sub.add_parser("report", help="HTML write-up of a run", description="Build the HTML report of a run.")
    _common(p)
    p.add_argument("run_id")
    p.add_argument("--out-dir", default=None, help="folder for the HTML (default data/runs/reports)")
    add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nbp-kit``; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) and usage errors (2), as codes rather than exits
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except SpendCapExceeded as exc:
        print(f"nbp-kit: spend cap: {exc}", file=sys.stderr)
        return EXIT_SPEND_CAP
    except (ConfigError, StoreError) as exc:
        print(f"nbp-kit: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "nbp-kit: interrupted; every record written so far is in the store (resume with --run-id)", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    except NbpError as exc:
        print(f"nbp-kit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURES


@contextlib.contextmanager
def _target(args: argparse.Namespace, *, clock_start: Any = None, clock_speed: float = 1.0) -> Iterator[Any]:
    """The emulator handle (started here) or a dict of client settings for a real service."""
    if args.emulator and args.base_url:
        raise ConfigError("--emulator and --base-url are both given; pick one")
    if args.emulator:
        from . import emulator

        if not args.time_scale > 0:
            raise ConfigError(f"--time-scale={args.time_scale!r} is not accepted; use a number > 0")
        emu = emulator.start(
            args.profile,
            time_scale=args.time_scale,
            faults=not args.no_faults,
            quotas=not args.no_quotas,
            clock_start=clock_start,
            clock_speed=clock_speed,
        )
        try:
            yield emu
        finally:
            emu.stop()
    elif args.base_url:
        yield {"base_url": args.base_url}
    else:
        raise ConfigError("no target: pass --emulator (embedded emulator) or --base-url URL (a real service)")


def _store(args: argparse.Namespace) -> Any:
    from .runs.store import RunStore

    return RunStore(args.store)


def _plan_from_args(args: argparse.Namespace) -> Any:
    from .runs.plan import Plan

    fields: dict[str, Any] = {}
    if args.plan:
        fields = Plan.from_file(args.plan).as_dict()
    for name, values in (
        ("prompts", args.prompt),
        ("resolutions", _split(args.resolution)),
        ("thinking_levels", _split(args.thinking)),
        ("aspect_ratios", _split(args.aspect)),
        ("grids", _split(args.grid)),
        ("transports", _split(args.transport)),
    ):
        if values:
            fields[name] = values
    for name in ("repetitions", "seed", "model", "provider"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if not fields.get("prompts"):
        if args.run_id:
            return None  # resume: the stored plan
        raise ConfigError("no prompts: pass --prompt TEXT (repeatable) or --plan FILE")
    return Plan.from_dict(fields, source=args.plan or "command line")


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import run_from_args

    return run_from_args(args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .runs.plan import DEFAULT_SPEND_CAP_USD, check_spend_cap
    from .runs.runner import run_sweep

    plan = _plan_from_args(args)
    store = _store(args)
    cap = args.spend_cap if args.spend_cap is not None else DEFAULT_SPEND_CAP_USD
    if args.dry_run:
        if plan is None:
            raise ConfigError("--dry-run needs a plan (flags or --plan)")
        conc = args.concurrency if isinstance(args.concurrency, int) else args.max_concurrency
        pf = plan.preflight(
            concurrency=conc,
            time_scale=args.time_scale if args.emulator else 1.0,
            profile=args.profile if args.emulator else None,
            rate_per_min=args.rate,
        )
        if args.spend_rate is not None:
            from .runs.quota import SpendWindow, spend_limit_value

            window = SpendWindow(spend_limit_value(args.spend_rate) or 0.0, time_scale=pf.time_scale)
            implied = window.implied_time_s(pf.est_cost_usd)
            pf = dataclasses.replace(pf, spend_rate_time_s=implied, est_time_s=max(pf.est_time_s, implied))
        print(f"pre-flight: {pf}")
        check_spend_cap(pf, cap)
        return EXIT_OK
    if args.share:
        return _share(args, plan, store, cap)
    with _target(args) as target:
        result = run_sweep(
            plan,
            target,
            store=store,
            spend_cap_usd=cap,
            concurrency=args.concurrency,
            max_concurrency=args.max_concurrency,
            rate_per_min=args.rate,
            images_per_min=args.images_per_min,
            spend_rate_usd_per_10min=args.spend_rate,
            fallback_model=args.fallback_model,
            arrival=args.arrival,
            progress=not args.no_progress,
            run_id=args.run_id,
            output_dir=args.output_dir,
            max_error_rate=args.max_error_rate,
            tags=tuple(args.tag),
        )
    _print_result(result, store)
    if result.stopped_reason == "fatal":
        print(f"nbp-kit: stopped at the first call that cannot succeed: {result.fatal_message}", file=sys.stderr)
        return EXIT_FAILURES
    if result.stopped_reason == "spend_cap":
        print(
            f"nbp-kit: stopped at the spend cap (${cap:.2f}); resume with --run-id {result.run_id} --spend-cap N",
            file=sys.stderr,
        )
        return EXIT_SPEND_CAP
    if result.stopped_reason == "error_rate":
        print(f"nbp-kit: stopped: error rate above --max-error-rate {args.max_error_rate}", file=sys.stderr)
        return EXIT_FAILURES
    if result.stopped_reason == "stopped":
        return EXIT_INTERRUPTED
    if result.calls and not result.ok:
        print(f"nbp-kit: all {result.calls} calls failed", file=sys.stderr)
        return EXIT_FAILURES
    return EXIT_OK


def _share(args: argparse.Namespace, plan: Any, store: Any, cap: float) -> int:
    import urllib.parse

    from .runs.worker import share_run

    if plan is None:
        raise ConfigError("--share needs a plan (flags or --plan)")
    if args.emulator:
        raise ConfigError("--share and --emulator are both given; workers need a service they all reach (--base-url)")
    run_id = share_run(
        plan,
        store,
        spend_cap_usd=cap,
        requests_per_min=args.rate,
        run_id=args.run_id,
        base_host=urllib.parse.urlsplit(args.base_url or "").netloc.rsplit("@", 1)[-1],
        tags=tuple(args.tag),
    )
    print(f"shared run {run_id}: {len(plan.items())} items in {store.path}")
    print(f"start workers with: nbp-kit worker {run_id} --store URL --base-url URL --region LABEL")
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from .runs.worker import run_worker

    if not args.base_url:
        raise ConfigError("no target: pass --base-url URL (the service every worker calls)")
    store = _store(args)
    result = run_worker(
        args.run_id,
        store,
        {"base_url": args.base_url},
        region=args.region,
        concurrency=args.concurrency,
        lease_s=args.lease_s,
        output_dir=args.output_dir,
    )
    print(
        f"worker {result.worker_id} ({result.region or 'no region'}): {result.calls} calls, {result.ok} ok, "
        f"{result.failed} failed, {result.attempts} attempts, {result.rate_limited} answered 429, "
        f"{result.reclaimed} taken over from stopped workers; {result.stopped_reason}"
    )
    if result.stopped_reason == "spend_cap":
        return EXIT_SPEND_CAP
    return EXIT_OK if result.failed == 0 else EXIT_FAILURES


def _spend_rate(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # a tier name; the sweep checks it before any request


def _print_result(result: Any, store: Any) -> None:
    print(
        f"run {result.run_id}: {result.ok} ok, {result.failed} failed of {result.calls} calls "
        f"({result.skipped} already done), {result.attempts} attempts, {result.rate_limited} answered 429"
    )
    print(
        f"cost ${result.cost_usd:.4f} (estimate ${result.est_cost_usd:.4f}; run total ${result.run_cost_usd:.4f}), "
        f"wall {result.wall_s:.1f} s, {result.achieved_rate_per_min:.1f} calls per service minute"
    )
    if result.learned_rate_per_min is not None:
        stated = f" (a 429 stated {result.stated_quota_per_min:g}/min)" if result.stated_quota_per_min else ""
        print(f"learned quota rate {result.learned_rate_per_min:.1f} requests per service minute{stated}")
    if result.breaker and result.breaker.get("opened"):
        fell_back = f"; {result.fallback_calls} calls sent to the fallback model" if result.fallback_calls else ""
        print(f"circuit breaker opened {result.breaker['opened']} time(s) on overloads{fell_back}")
    for kind, info in result.errors.items():
        print(f"errors: {kind} x{info['attempts']}, e.g. {info['sample']}")
    print(f"records: {store.path} (run_id {result.run_id})")


def _cmd_probe(args: argparse.Namespace) -> int:
    from .runs.plan import DEFAULT_SPEND_CAP_USD
    from .runs.probe import DEFAULT_PROBE_PROMPT, run_probe
    from .spec import ImageSpec

    specs = [ImageSpec(resolution=r) for r in (_split(args.resolution) or ["1K"])]
    store = _store(args)
    if args.rounds is None and args.duration_h is None:
        raise ConfigError(
            "probe needs --rounds N or --duration-h H (a probe with neither runs until Ctrl-C: "
            "pass a large --duration-h for that)"
        )
    with _target(args, clock_start=args.clock_start, clock_speed=args.clock_speed) as target:
        result = run_probe(
            target,
            store=store,
            interval_min=args.interval_min,
            jitter_frac=args.jitter,
            specs=specs,
            prompt=args.prompt or DEFAULT_PROBE_PROMPT,
            rounds=args.rounds,
            duration_h=args.duration_h,
            spend_cap_usd=args.spend_cap if args.spend_cap is not None else DEFAULT_SPEND_CAP_USD,
            clock_speed=args.clock_speed if args.emulator else None,
        )
    print(
        f"probe {result.run_id}: {result.rounds} rounds, {result.ok} ok / {result.attempts} attempts, "
        f"${result.cost_usd:.4f}, {result.virtual_span_h:.1f} service hours in {result.wall_s:.1f} s"
    )
    print(f"records: {store.path} (run_id {result.run_id})")
    return EXIT_SPEND_CAP if result.stopped_reason == "spend_cap" else EXIT_OK


def _cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.action == "list":
        frame = store.runs()
        if frame.empty:
            print(f"no runs in {store.path}")
            return EXIT_OK
        for row in frame.itertuples():
            summary = row.summary or {}
            print(
                f"{row.run_id}  {row.status:<10} {row.provider:<7} {summary.get('ok', '-'):>5} ok  "
                f"${summary.get('run_cost_usd', 0.0) or 0.0:8.4f}  tags={','.join(row.tags) or '-'}"
            )
        return EXIT_OK
    if not args.run_id:
        raise ConfigError(f"runs {args.action} needs a RUN_ID")
    if args.action == "show":
        import json

        print(json.dumps(store.get_run(args.run_id), indent=2, default=str))
    elif args.action == "tag":
        if not args.tag:
            raise ConfigError("runs tag needs RUN_ID TAG")
        store.tag_run(args.run_id, args.tag)
        print(f"tagged {args.run_id} with {args.tag!r}")
    elif args.action == "delete":
        store.get_run(args.run_id)
        if not args.yes:
            raise ConfigError(f"runs delete {args.run_id} removes its records and images; add --yes to confirm")
        store.delete_run(args.run_id)
        print(f"deleted {args.run_id}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    out = _store(args).export(args.run_id, args.path)
    print(f"wrote {out}")
    return EXIT_OK


def phase_table(frame: Any) -> Any:
    """Median seconds per phase for successful attempts, by configuration (a DataFrame)."""
    from .records import PHASES

    ok = frame[frame["status"] == "ok"]
    cols = [f"{p}_s" for p in PHASES if f"{p}_s" in ok.columns and ok[f"{p}_s"].notna().any()] + ["total_s"]
    label = ok["resolution"] + " " + ok["aspect_ratio"]
    table = ok.assign(config=label).groupby("config")[cols].median().round(3)
    table.insert(0, "n", ok.assign(config=label).groupby("config").size())
    return table


def demo_epilogue(run_id: str, store_path: str, *, report: bool) -> int:
    """Where the demo hands over to the report (``nbp_kit.report.build_report``).

    Kept separate so the write-up step can change without touching the demo itself.
    """
    if not report:
        return EXIT_OK
    try:
        from .report import build_report
    except ImportError:
        print("report: not available in this install (nbp_kit.report missing)")
        return EXIT_OK
    try:
        html = build_report(run_id, store_path=store_path)
    except Exception as exc:  # noqa: BLE001 - the demo's records stand even if the write-up fails
        print(f"report: could not be built ({type(exc).__name__}: {exc}); run `nbp-kit report {run_id}` to retry")
        return EXIT_OK
    print(f"report: {html}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import emulator
    from .runs.plan import Plan
    from .runs.runner import run_sweep

    if not args.time_scale > 0:
        raise ConfigError(f"--time-scale={args.time_scale!r} is not accepted; use a number > 0")
    plan = Plan(
        prompts=["an orange cat on a window sill", "a lighthouse at dusk, watercolour"],
        resolutions=["1K", "2K"],
        repetitions=args.repetitions,
        seed=0,
    )
    store = _store(args)
    print(f"pre-flight: {plan.preflight(concurrency=8, time_scale=args.time_scale, profile='default')}")
    with emulator.start("default", time_scale=args.time_scale) as emu:
        print(f"emulator at {emu.base_url} (profile {emu.profile_name}, time scale {emu.time_scale})")
        warm_s = emu.prewarm(resolutions=plan.resolutions, aspect_ratios=plan.aspect_ratios)
        print(f"emulator pre-rendered its image backgrounds in {warm_s:.2f} s")
        result = run_sweep(
            plan,
            emu,
            store=store,
            concurrency="adaptive",
            max_concurrency=8,
            output_dir=args.output_dir,
            tags=("demo",),
        )
        emu_stats = emu.stats()
    _print_result(result, store)
    behind = emu_stats.get("behind_model", 0)
    print(
        f"emulator kept up with its model: {'yes' if not behind else 'no'} "
        f"({behind} overrun(s) of rendering or encoding past the modeled time, {emu_stats.get('behind_model_s', 0.0):.3f} s in all)"
    )
    frame = store.attempts(run_ids=[result.run_id])
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("\nmedian seconds per phase (successful attempts, scaled time):")
        print(phase_table(frame).to_string())
    from .analysis.summaries import bottleneck

    print(f"\nwhere the time goes: {bottleneck(frame)}")
    run = store.get_run(result.run_id)
    print(f"\nimages: {run.get('image_dir')}")
    return demo_epilogue(result.run_id, str(store.path), report=not args.no_report)


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        from .report import build_report
    except ImportError:
        print("nbp-kit: report is not available in this install (nbp_kit.report is missing)", file=sys.stderr)
        return EXIT_BAD_INPUT
    _store(args).get_run(args.run_id)  # unknown run id -> ConfigError before any work
    html = build_report(args.run_id, store_path=args.store, out_dir=args.out_dir)
    print(f"wrote {html}")
    return EXIT_OK


# --------------------------------------------------------------------------- batch
def add_batch_parser(sub: Any) -> None:
    """The ``batch`` sub-command and its four actions."""
    p = sub.add_parser(
        "batch",
        help="run a plan as one Batch API job at half price",
        description="Submit a plan as a Gemini Batch API job, follow it, collect it, cancel it.",
    )
    actions = p.add_subparsers(dest="batch_action", metavar="ACTION", required=True)
    s = actions.add_parser("submit", help="submit a plan as one job; prints the run id")
    _common(s)
    s.add_argument("--base-url", required=True, help="service base URL (the emulator's, or Google's)")
    s.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "inline", "file"),
        help="inline requests or a JSONL file (default auto: inline up to 20 items)",
    )
    s.add_argument("--plan", default=None, help="plan file (.json or .toml) with Plan fields")
    s.add_argument("--prompt", action="append", help="a prompt (repeat for several)")
    s.add_argument("--resolution", action="append", help="1K, 2K, 4K (comma list or repeat)")
    s.add_argument("--thinking", action="append", help="thinking levels; 'default' sends none")
    s.add_argument("--aspect", action="append", help="aspect ratios, e.g. 1:1,16:9")
    s.add_argument("--repetitions", type=int, default=None, help="repetitions (default 1)")
    s.add_argument("--seed", type=int, default=None, help="shuffle seed (default 0)")
    s.add_argument("--model", default=None, help="model id")
    s.add_argument("--spend-cap", type=float, default=None, help="USD cap at the batch price (default 2.0)")
    s.add_argument("--output-dir", default=None, help="image folder")
    s.add_argument("--tag", action="append", default=[], help="tag the run")
    for name, text in (
        ("status", "ask the service once and print the job's state"),
        ("collect", "record every item of a finished job (--wait polls until it ends)"),
        ("cancel", "cancel the job"),
    ):
        a = actions.add_parser(name, help=text)
        _common(a)
        a.add_argument("run_id")
        a.add_argument("--base-url", default=None, help="override the URL recorded at submit")
        if name == "collect":
            a.add_argument("--wait", action="store_true", help="poll until the job ends, then collect")
            a.add_argument("--poll-s", type=float, default=30.0, help="first poll interval (default 30 s)")
            a.add_argument("--max-poll-s", type=float, default=600.0, help="longest poll interval (default 600 s)")


def cmd_batch(args: argparse.Namespace) -> int:
    from .runs import batch

    store = _store(args)
    if args.batch_action == "submit":
        from .runs.plan import DEFAULT_SPEND_CAP_USD

        for name in ("grid", "transport", "provider", "run_id"):
            setattr(args, name, None)
        plan = _plan_from_args(args)
        run_id = batch.submit_batch(
            plan,
            base_url=args.base_url,
            store=store,
            mode=args.mode,
            output_dir=args.output_dir,
            tags=tuple(args.tag),
            spend_cap_usd=args.spend_cap if args.spend_cap is not None else DEFAULT_SPEND_CAP_USD,
        )
        print(batch.batch_status(store, run_id))
        print(f"collect with: nbp-kit batch collect {run_id} --wait --store {store.path}")
        return EXIT_OK
    if args.batch_action == "status":
        print(batch.batch_status(store, args.run_id, base_url=args.base_url))
        return EXIT_OK
    if args.batch_action == "cancel":
        print(batch.cancel_batch(store, args.run_id, base_url=args.base_url))
        return EXIT_OK
    if args.wait:
        batch.wait_batch(
            store,
            args.run_id,
            base_url=args.base_url,
            poll_s=args.poll_s,
            max_poll_s=args.max_poll_s,
            on_poll=lambda s: print(s, flush=True),
        )
    status = batch.collect_batch(store, args.run_id, base_url=args.base_url)
    print(status)
    print(f"recorded cost ${store.run_cost_usd(args.run_id):.4f}; records: {store.path} (run_id {args.run_id})")
    return EXIT_OK if status.state == "BATCH_STATE_SUCCEEDED" else EXIT_FAILURES


_COMMANDS = {
    "emulator": _cmd_emulator,
    "sweep": _cmd_sweep,
    "probe": _cmd_probe,
    "runs": _cmd_runs,
    "export": _cmd_export,
    "demo": _cmd_demo,
    "report": _cmd_report,
    "worker": _cmd_worker,
    "batch": cmd_batch,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
