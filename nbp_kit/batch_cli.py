"""``nbp-kit batch submit|status|collect|cancel``: the command line of :mod:`nbp_kit.batch`.

::

    nbp-kit batch submit --base-url URL --prompt "a cat" --repetitions 100 --mode file
    nbp-kit batch status RUN_ID
    nbp-kit batch collect RUN_ID --wait          # poll with back-off, then record every item
    nbp-kit batch cancel RUN_ID

The key comes from ``GEMINI_API_KEY``. Against the emulator, run ``nbp-kit emulator`` in
another terminal (a batch job lives on the server, beyond one command) and pass its URL.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_batch_parser(sub: Any) -> None:
    """The ``batch`` sub-command and its four actions."""
    from .cli import _common

    p = sub.add_parser("batch", help="run a plan as one Batch API job at half price",
                       description="Submit a plan as a Gemini Batch API job, follow it, collect it, cancel it.")
    actions = p.add_subparsers(dest="batch_action", metavar="ACTION", required=True)
    s = actions.add_parser("submit", help="submit a plan as one job; prints the run id")
    _common(s)
    s.add_argument("--base-url", required=True, help="service base URL (the emulator's, or Google's)")
    s.add_argument("--mode", default="auto", choices=("auto", "inline", "file"),
                   help="inline requests or a JSONL file (default auto: inline up to 20 items)")
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
    for name, text in (("status", "ask the service once and print the job's state"),
                       ("collect", "record every item of a finished job (--wait polls until it ends)"),
                       ("cancel", "cancel the job")):
        a = actions.add_parser(name, help=text)
        _common(a)
        a.add_argument("run_id")
        a.add_argument("--base-url", default=None, help="override the URL recorded at submit")
        if name == "collect":
            a.add_argument("--wait", action="store_true", help="poll until the job ends, then collect")
            a.add_argument("--poll-s", type=float, default=30.0, help="first poll interval (default 30 s)")
            a.add_argument("--max-poll-s", type=float, default=600.0, help="longest poll interval (default 600 s)")


def cmd_batch(args: argparse.Namespace) -> int:
    from . import batch
    from .cli import EXIT_FAILURES, EXIT_OK, _plan_from_args, _store

    store = _store(args)
    if args.batch_action == "submit":
        from .sweep import DEFAULT_SPEND_CAP_USD

        for name in ("grid", "transport", "provider", "run_id"):
            setattr(args, name, None)
        plan = _plan_from_args(args)
        run_id = batch.submit_batch(plan, base_url=args.base_url, store=store, mode=args.mode,
                                    output_dir=args.output_dir, tags=tuple(args.tag),
                                    spend_cap_usd=args.spend_cap if args.spend_cap is not None else DEFAULT_SPEND_CAP_USD)
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
        batch.wait_batch(store, args.run_id, base_url=args.base_url, poll_s=args.poll_s, max_poll_s=args.max_poll_s,
                         on_poll=lambda s: print(s, flush=True))
    status = batch.collect_batch(store, args.run_id, base_url=args.base_url)
    print(status)
    print(f"recorded cost ${store.run_cost_usd(args.run_id):.4f}; records: {store.path} (run_id {args.run_id})")
    return EXIT_OK if status.state == "BATCH_STATE_SUCCEEDED" else EXIT_FAILURES
