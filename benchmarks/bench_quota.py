"""Quota benchmark: how close each way of running a batch gets to the quota's ceiling.

An emulator with an images-per-minute quota (default 20/min, 10 concurrent; a "minute" is
``60 * time_scale`` seconds) serves N images, run three ways side by side:

* ``nbp_kit adaptive``: ``run_sweep`` with adaptive concurrency (AIMD) and an images-per-minute
  bucket at 97 % of the quota, pausing everyone after a 429;
* ``fixed + tenacity``: 10 threads, the openai SDK (no SDK retries) wrapped in tenacity's
  random exponential back-off (scaled by ``time_scale``, so it is not penalised by real seconds);
* ``article sequential``: the seed article's loop, one request at a time, openai SDK + tenacity.

Ideal wall time = N / quota minutes plus the run's median latency (a runner that sends at
exactly the quota from the first instant still waits one latency for its last image). Prints a Markdown table: wall time, ideal / wall
(1.0 = at the ceiling), share of attempts answered 429, images per (service) minute.
Run: ``python -m benchmarks.bench_quota [--images 200] [--time-scale 0.01]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import threading
import time
from typing import Any


def _profile(quota_per_min: int, concurrent: int, body: str = "named") -> dict[str, Any]:
    from nbp_kit.emulator import load_profile

    profile = copy.deepcopy(load_profile("default"))
    profile["quotas"] = {
        "rpm": None,
        "images_per_min": quota_per_min,
        "concurrent": concurrent,
        "images_per_day": None,
        "body": body,
    }
    profile["name"] = f"quota-{quota_per_min}"
    return profile


def _tenacity_loop(emu: Any, n: int, workers: int, time_scale: float, grid: str) -> dict[str, Any]:
    import openai
    import tenacity

    client = openai.OpenAI(api_key=emu.api_key, base_url=emu.relay_base_url, max_retries=0, timeout=60)
    lock = threading.Lock()
    counts = {"attempts": 0, "429": 0, "ok": 0}
    latencies: list[float] = []

    def is_retryable(exc: BaseException) -> bool:
        return isinstance(exc, (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError))

    @tenacity.retry(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=tenacity.stop_after_attempt(8),
        wait=tenacity.wait_random_exponential(multiplier=1.0 * time_scale, max=60 * time_scale),
        reraise=True,
    )
    def one(i: int) -> None:
        with lock:
            counts["attempts"] += 1
        sent = time.monotonic()
        try:
            client.images.generate(
                model="gemini-3-pro-image-preview",
                prompt=f"benchmark image {i % 4}",
                size="1024x1024",
                response_format="b64_json",
                extra_body={"grid": grid},
            )
        except openai.RateLimitError:
            with lock:
                counts["429"] += 1
            raise
        with lock:
            counts["ok"] += 1
            latencies.append(time.monotonic() - sent)

    def call(i: int) -> None:
        try:
            one(i)
        except openai.OpenAIError:  # gave up after its retries: a lost image, counted
            with lock:
                counts["failed"] += 1

    counts["failed"] = 0
    start = time.monotonic()
    if workers == 1:
        for i in range(n):
            call(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(call, range(n)))
    client.close()
    latencies.sort()
    median = latencies[len(latencies) // 2] if latencies else 0.0
    return {"wall_s": time.monotonic() - start, "median_latency_s": median, **counts}


def _learned(emu: Any, n: int, provider: str) -> dict[str, Any]:
    """run_sweep as a new user calls it: no rate given; the quota is learned from the 429s."""
    from nbp_kit.runs.plan import Plan
    from nbp_kit.runs.runner import run_sweep
    from nbp_kit.runs.store import RunStore

    plan = Plan(
        prompts=[f"benchmark image {i}" for i in range(4)],
        repetitions=n // 4,
        provider=provider,
        model="gemini-3-pro-image-preview",
    )
    store = RunStore.memory()
    res = run_sweep(plan, emu, store=store, progress=False, save_images=False, spend_cap_usd=n * 0.2)
    return _outcome(res, store)


def _adaptive(emu: Any, n: int, quota: int, concurrent: int, grid: str, share: float) -> dict[str, Any]:
    from nbp_kit.runs.plan import Plan
    from nbp_kit.runs.runner import run_sweep
    from nbp_kit.runs.store import RunStore

    plan = Plan(
        prompts=[f"benchmark image {i}" for i in range(4)],
        grids=[grid],
        repetitions=n // 4,
        provider="relay",
        model="gemini-3-pro-image-preview",
    )
    store = RunStore.memory()
    res = run_sweep(
        plan,
        emu,
        store=store,
        concurrency="adaptive",
        max_concurrency=concurrent,
        images_per_min=share * quota,
        progress=False,
        save_images=False,
        spend_cap_usd=n * 0.06,
        learn_quota=False,
    )
    return _outcome(res, store)


def _outcome(res: Any, store: Any) -> dict[str, Any]:
    """A sweep's figures for the tables."""
    return {
        "median_latency_s": _median_latency(store),
        "wall_s": res.wall_s,
        "attempts": res.attempts,
        "429": res.rate_limited,
        "ok": res.ok,
        "failed": res.failed,
        "learned": res.learned_rate_per_min,
    }


def _ideal_s(out: dict[str, Any], quota_per_min: float, time_scale: float) -> float:
    """The fastest any runner could finish: images sent at exactly the quota from the first
    instant, the last one arriving one median latency after it was sent (the pipeline's fill)."""
    images = out["ok"] + out["failed"]
    return images / quota_per_min * 60 * time_scale + out["median_latency_s"]


def _median_latency(store: Any) -> float:
    """Median real seconds from send to the end of the run's successful calls (pacing waits excluded)."""
    frame = store.attempts(status="ok")
    return float((frame["ended_at"] - frame["sent_at"]).median())


def main(argv: list[str] | None = None) -> int:
    from nbp_kit import emulator

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--quota", type=int, default=20, help="images per minute")
    ap.add_argument("--concurrent", type=int, default=10, help="concurrent-request quota")
    ap.add_argument("--time-scale", type=float, default=0.01)
    ap.add_argument(
        "--sequential-images",
        type=int,
        default=40,
        help="images for the sequential loop (it is slow; its ratio uses its own ideal)",
    )
    ap.add_argument("--bucket-share", type=float, default=0.97, help="bucket rate as a share of the quota")
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument(
        "--quotas",
        default=None,
        help="comma-separated images/min quotas the runner is NOT told, e.g. 7,13,40: compares the "
        "learned-rate runner with the told-rate runner and the article's loop at each",
    )
    ap.add_argument("--body", default="named", choices=["named", "bare"], help="how the emulator's 429s look")
    args = ap.parse_args(argv)
    if args.quotas:
        return _untold(args)
    n, ts = args.images, args.time_scale
    ideal_s = n / args.quota * 60 * ts
    rows = []
    cases: list[tuple[str, str, Any]] = [
        (
            "nbp_kit adaptive",
            "1x1",
            lambda emu: _adaptive(emu, n, args.quota, args.concurrent, "1x1", args.bucket_share),
        ),
        (
            "nbp_kit adaptive, 2x2 grids",
            "2x2",
            lambda emu: _adaptive(emu, n, args.quota, args.concurrent, "2x2", args.bucket_share),
        ),
        ("fixed 10 + tenacity", "1x1", lambda emu: _tenacity_loop(emu, n, args.concurrent, ts, "1x1")),
    ]
    if not args.skip_sequential:
        cases.append(
            (
                "article sequential (openai + tenacity)",
                "1x1",
                lambda emu: _tenacity_loop(emu, args.sequential_images, 1, ts, "1x1"),
            )
        )
    for name, grid, fn in cases:
        # A fresh emulator per case: each starts with an empty quota window.
        with emulator.start(_profile(args.quota, args.concurrent), time_scale=ts, faults=False, quotas=True) as emu:
            out = fn(emu)
        minutes = out["wall_s"] / (60 * ts)
        variants = out["ok"] * (4 if grid == "2x2" else 1)
        ideal = _ideal_s(out, args.quota, ts)
        rows.append(
            (
                f"{name} ({out['ok'] + out['failed']} images)",
                out["wall_s"],
                ideal / out["wall_s"],
                out["429"] / max(1, out["attempts"]),
                out["ok"] / minutes,
                variants / minutes,
                out["failed"],
            )
        )
        print(rows[-1], flush=True)
    print(
        f"\n{n} images, quota {args.quota} images/min and {args.concurrent} concurrent, time_scale {ts} "
        f"(ideal {ideal_s:.2f} s real = {n / args.quota:.1f} service minutes, plus one median latency)\n"
    )
    print("| runner | wall s | ideal / wall | 429 share | images/min | variants/min | lost |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, wall, ratio, share, ipm, vpm, lost in rows:
        print(f"| {name} | {wall:.2f} | {ratio:.2f} | {share:.1%} | {ipm:.1f} | {vpm:.1f} | {lost} |")
    return 0


def _untold(args: argparse.Namespace) -> int:
    from nbp_kit import emulator

    n, ts = args.images, args.time_scale
    rows = []
    for quota in [int(q) for q in args.quotas.split(",")]:
        cases: list[tuple[str, Any]] = [
            ("nbp_kit learned (not told; gemini)", lambda emu: _learned(emu, n, "gemini")),
            (
                "nbp_kit told the rate (97 %)",
                lambda emu, q=quota: _adaptive(emu, n, q, args.concurrent, "1x1", args.bucket_share),
            ),
        ]
        if not args.skip_sequential:
            cases.append(
                (
                    "article sequential (openai + tenacity)",
                    lambda emu: _tenacity_loop(emu, args.sequential_images, 1, ts, "1x1"),
                )
            )
        for name, fn in cases:
            with emulator.start(
                _profile(quota, args.concurrent, args.body), time_scale=ts, faults=False, quotas=True
            ) as emu:
                out = fn(emu)
            ideal = _ideal_s(out, quota, ts)
            learned = f"{out['learned']:.1f}" if out.get("learned") else "-"
            rows.append(
                (
                    quota,
                    f"{name} ({out['ok'] + out['failed']} images)",
                    out["wall_s"],
                    ideal / out["wall_s"],
                    out["429"] / max(1, out["attempts"]),
                    out["failed"],
                    learned,
                )
            )
            print(rows[-1], flush=True)
    print(f"\nquota the runner is not told; {args.body} 429 bodies; time_scale {ts}; {args.concurrent} concurrent\n")
    print("| quota/min | runner | wall s | ideal / wall | 429 share | lost | learned rate/min |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for quota, name, wall, ratio, share, lost, learned in rows:
        print(f"| {quota} | {name} | {wall:.2f} | {ratio:.2f} | {share:.1%} | {lost} | {learned} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
