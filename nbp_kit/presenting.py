"""Numbers a reader trusts: human units, readable lists and tables, and a run's answer first.

Faces (the report, the panels, the gallery) show what :mod:`nbp_kit.analysis` computes;
this module only words and formats it:

- :func:`fmt_seconds`, :func:`fmt_money`, :func:`fmt_share`, :func:`fmt_interval`: one or two
  decimals, a unit, a currency; never ``1.118709``;
- :func:`latency_frame`: the attempts in real-equivalent seconds (:func:`nbp_kit.analysis.real_seconds`)
  so emulator runs read like the service they model; the scale is stated once (:func:`time_base`);
- :func:`plan_items`, :func:`metadata_items`, :func:`items_html`: a run's plan as its knobs and its
  metadata as a readable list, not dict reprs;
- :class:`Table`: a DataFrame shown without its index column;
- :func:`run_answer` / :class:`RunAnswer`: what was run, the bottleneck, the recommended
  configuration with cost and latency, the article comparison, the timeout to use and what the
  data cannot yet say, each fact taken from one analysis function.

>>> fmt_seconds(1.118709), fmt_seconds(44.96), fmt_money(0.134)
('1.12 s', '45.0 s', '$0.134')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from . import errors

__all__ = [
    "RunAnswer",
    "Table",
    "config_label",
    "effects_table",
    "fmt_interval",
    "fmt_money",
    "fmt_seconds",
    "fmt_share",
    "hours_table",
    "items_html",
    "latency_frame",
    "metadata_items",
    "plan_items",
    "reference_table",
    "run_answer",
    "summary_rows",
    "time_base",
    "windows_table",
]

#: Knobs of a configuration, in the order a reader names them.
KNOBS: tuple[str, ...] = ("resolution", "aspect_ratio", "thinking_level", "grid", "transport")
#: Column -> label for the varying knobs of a summary.
KNOB_LABELS: dict[str, str] = {
    "provider": "provider",
    "model": "model",
    "resolution": "resolution",
    "aspect_ratio": "aspect ratio",
    "thinking_level": "thinking",
    "grid": "grid",
    "transport": "transport",
}
#: Plan fields in reading order, with their labels (others follow alphabetically).
_PLAN_LABELS: dict[str, str] = {
    "prompts": "prompts",
    "resolutions": "resolutions",
    "thinking_levels": "thinking levels",
    "aspect_ratios": "aspect ratios",
    "grids": "grids",
    "transports": "transports",
    "repetitions": "repetitions",
    "model": "model",
    "provider": "provider",
    "seed": "seed",
}
_META_LABELS: dict[str, str] = {
    "run_id": "run",
    "created_at": "created",
    "provider": "provider",
    "base_host": "host",
    "profile": "emulator profile",
    "clock": "clock",
    "time_scale": "time scale",
    "status": "status",
    "attempts": "attempts",
    "calls": "calls",
    "ok": "succeeded",
    "errors": "failed",
    "cost_usd": "recorded cost",
    "git_commit": "git commit",
    "tags": "tags",
    "image_dir": "images in",
}
#: Knob-effect verdict wordings that make no claim (now or in the stricter three-verdict version).
_OPEN_VERDICTS = ("inconclusive", "too few", "no detectable")


# --------------------------------------------------------------------------- units


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_seconds(value: Any, *, decimals: int | None = None) -> str:
    """Seconds with a unit: two decimals below 10 s, one above, ``n/a`` when unknown.

    >>> fmt_seconds(0.0421), fmt_seconds(12.345), fmt_seconds(None), fmt_seconds(250.0)
    ('0.04 s', '12.3 s', 'n/a', '250 s')
    """
    x = _finite(value)
    if x is None:
        return "n/a"
    if decimals is None:
        decimals = 2 if abs(x) < 10 else 1 if abs(x) < 100 else 0
    return f"{x:.{decimals}f} s"


def fmt_money(value: Any, currency: str = "USD") -> str:
    """Money with its currency: three decimals below a dollar (image prices), else two.

    >>> fmt_money(0.05), fmt_money(12.5), fmt_money(0.1344, "EUR")
    ('$0.050', '$12.50', '0.134 EUR')
    """
    x = _finite(value)
    if x is None:
        return "n/a"
    text = f"{x:.3f}" if abs(x) < 1 else f"{x:,.2f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def fmt_share(value: Any) -> str:
    """A share as a whole percentage (``0.973 -> '97 %'``)."""
    x = _finite(value)
    return "n/a" if x is None else f"{100 * x:.0f} %"


def fmt_interval(lo: Any, hi: Any, *, ci: float = 0.95) -> str:
    """``95 % CI 40.1-52.3 s``, or a plain statement that there is none.

    >>> fmt_interval(40.11, 52.3), fmt_interval(float("nan"), 3)
    ('95 % CI 40.1-52.3 s', 'no interval: too few calls')
    """
    a, b = _finite(lo), _finite(hi)
    if a is None or b is None:
        return "no interval: too few calls"
    decimals = 2 if max(abs(a), abs(b)) < 10 else 1
    return f"{100 * ci:.0f} % CI {a:.{decimals}f}-{b:.{decimals}f} s"


# --------------------------------------------------------------------------- time base


def time_base(frame: pd.DataFrame) -> str:
    """One sentence on what the seconds are: real, or the emulator's scaled back to real.

    >>> time_base(pd.DataFrame({"time_scale": [0.02]}))
    'Emulator run at time scale 0.02: latencies are shown as real-equivalent seconds (server time divided by 0.02).'
    """
    scales = sorted(
        {
            float(s)
            for s in pd.to_numeric(frame.get("time_scale", pd.Series(dtype=float)), errors="coerce").dropna()
            if s != 1.0
        }
    )
    if not scales:
        return "Latencies are measured seconds."
    shown = ", ".join(f"{s:g}" for s in scales)
    return (
        f"Emulator run at time scale {shown}: latencies are shown as real-equivalent seconds "
        f"(server time divided by {shown})."
    )


def latency_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The attempts in real-equivalent seconds (:func:`nbp_kit.analysis.real_seconds`; unchanged
    for real runs), so phase shares and the bottleneck describe the service being modelled."""
    from .analysis import real_seconds

    return real_seconds(frame) if len(frame) else frame


# --------------------------------------------------------------------------- lists and tables


def config_label(row: Mapping[str, Any], knobs: Sequence[str] = KNOBS) -> str:
    """``2K · 16:9 · thinking low`` from a row holding knob columns (missing ones skipped).

    >>> config_label({"resolution": "2K", "aspect_ratio": "1:1", "thinking_level": None, "grid": "1x1"})
    '2K · 1:1 · thinking default'
    """
    parts = []
    for knob in knobs:
        if knob not in row:
            continue
        value = row.get(knob)
        if knob == "thinking_level":
            text = str(value) if isinstance(value, str) and value and value != "(none)" else "default"
            parts.append(f"thinking {text}")
        elif knob == "grid":
            if isinstance(value, str) and value not in ("", "1x1"):
                parts.append(f"grid {value}")
        elif knob == "transport":
            if isinstance(value, str) and value not in ("", "unary"):
                parts.append(value)
        elif value is not None and str(value) != "nan":
            parts.append(str(value))
    return " · ".join(parts) or "all"


def _field(key: str, value: Any) -> Any:
    """A value worded by its field's unit suffix: ``_s`` seconds, ``_usd`` money, other floats short."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if key.endswith("_s"):
        return fmt_seconds(value)
    if key.endswith("_usd"):
        return fmt_money(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return value


def _words(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, (list, tuple)):
        shown = [_words(v) if v is not None else "default" for v in value]
        return ", ".join(shown) if shown else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_words(v)}" for k, v in value.items()) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def plan_items(plan: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A plan (``Plan.as_dict()`` or a probe's plan) as (knob, value) pairs in words.

    >>> plan_items({"prompts": ["a cat"], "resolutions": ["1K", "2K"], "thinking_levels": [None], "repetitions": 3})
    [('prompts', '1: "a cat"'), ('resolutions', '1K, 2K'), ('thinking levels', 'default'), ('repetitions', '3')]
    """
    if not plan:
        return []
    out = []
    ordered = [k for k in _PLAN_LABELS if k in plan] + sorted(k for k in plan if k not in _PLAN_LABELS)
    for key in ordered:
        value = plan[key]
        if key == "prompts" and isinstance(value, (list, tuple)):
            quoted = ", ".join(f'"{p if len(p) <= 60 else p[:57] + "..."}"' for p in map(str, value[:3]))
            more = f" and {len(value) - 3} more" if len(value) > 3 else ""
            text = f"{len(value)}: {quoted}{more}"
        elif key == "specs" and isinstance(value, (list, tuple)):
            text = "; ".join(config_label(s) if isinstance(s, Mapping) else _words(s) for s in value)
        else:
            text = _words(value)
        out.append((_PLAN_LABELS.get(key, key.replace("_", " ")), text))
    return out


def metadata_items(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """:func:`nbp_kit.report.run_metadata` as (label, value) pairs in words; the plan becomes
    its knobs (``plan: resolutions``...), money gets its currency, the time scale its meaning.
    Values are redacted (no key-looking text survives).
    """
    out: list[tuple[str, str]] = []
    for key, value in meta.items():
        if key in ("plan", "versions"):
            continue
        if key == "meta" and isinstance(value, Mapping):
            for sub, v in value.items():
                if sub == "preflight" and isinstance(v, Mapping):
                    v = (
                        f"{v.get('requests', '?')} requests, estimated {fmt_money(v.get('est_cost_usd'))}"
                        f" and {fmt_seconds(v.get('est_time_s'))}"
                    )
                else:
                    v = _field(sub, v)
                if v is None:
                    continue
                out.append((sub.replace("_usd", "").replace("_", " "), _words(v)))
            continue
        if key == "summary" and isinstance(value, Mapping):
            if value:
                out.append(
                    (
                        "outcome",
                        _words(
                            {
                                k.replace("_usd", "").replace("_s", "").replace("_", " "): _field(k, v)
                                for k, v in value.items()
                                if v is not None
                            }
                        ),
                    )
                )
            continue
        if key == "created_at" and isinstance(value, str):
            try:
                value = _dt.datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
        if key == "created_at" and isinstance(value, (int, float)):
            value = _dt.datetime.fromtimestamp(value, _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        elif key == "cost_usd":
            value = fmt_money(value)
        elif key == "time_scale" and _finite(value) not in (None, 1.0):
            value = f"{float(value):g} (the emulator runs {1 / float(value):g}x faster than the service)"
        if value in (None, "", [], {}):
            continue
        out.append((_META_LABELS.get(key, key.replace("_", " ")), _words(value)))
    plan = meta.get("plan")
    if isinstance(plan, Mapping):
        out.extend((f"plan: {label}", text) for label, text in plan_items(plan))
    return [(label, errors.redact(text)) for label, text in out]


def items_html(items: Iterable[tuple[str, str]], *, title: str | None = None) -> str:
    """A readable HTML list of (label, value) pairs, escaped."""
    lis = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in items)
    head = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    return f'{head}<ul class="nbp-items">{lis}</ul>'


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """A DataFrame that displays without its index column (HTML and plain text).

    >>> Table(pd.DataFrame({"a": [1]})).to_html().count("<th>")
    1
    """

    frame: pd.DataFrame
    empty_note: str = "Nothing to show."

    def to_html(self) -> str:
        if self.frame.empty:
            return f"<p><i>{html.escape(self.empty_note)}</i></p>"
        return self.frame.to_html(index=False, border=0, escape=True, classes="nbp-table", na_rep="")

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)

    def __len__(self) -> int:
        return len(self.frame)


# --------------------------------------------------------------------------- the run's numbers


def _varying(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in frame and frame[c].nunique(dropna=False) > 1]


def summary_rows(frame: pd.DataFrame, *, min_n: int = 5) -> Table:
    """Per configuration: calls, success, median, P95 with its interval, mean; real-equivalent seconds."""
    from .analysis import summarize
    from .analysis.frames import CONFIG_COLUMNS

    table = summarize(latency_frame(frame), latency="attempt", min_n=min_n)
    knobs = _varying(table, CONFIG_COLUMNS) or [c for c in KNOBS if c in table][:1]
    rows = []
    for r in table.to_dict("records"):
        rows.append(
            {
                "configuration": config_label(r, knobs),
                "attempts": int(r["n"]),
                "success": fmt_share(r["success_rate"]),
                "median": fmt_seconds(r["p50"]),
                "P95": fmt_seconds(r["p95"]),
                "P95 interval": fmt_interval(r["p95_lo"], r["p95_hi"]),
                "mean": fmt_seconds(r["mean"]),
            }
        )
    return Table(
        pd.DataFrame(rows, columns=["configuration", "attempts", "success", "median", "P95", "P95 interval", "mean"])
    )


def _signed_interval(lo: Any, hi: Any) -> str:
    a, b = _finite(lo), _finite(hi)
    if a is None or b is None:
        return "no interval"
    decimals = 2 if max(abs(a), abs(b)) < 10 else 1
    return f"{a:+.{decimals}f} to {b:+.{decimals}f} s"


def effects_table(effects: pd.DataFrame) -> Table:
    """:func:`nbp_kit.analysis.knob_effect` rows as: within, change, median difference, verdict."""
    rows = []
    knob_cols = [c for c in KNOB_LABELS if c in effects.columns and effects[c].nunique(dropna=False) > 1]
    for r in effects.to_dict("records"):
        within = config_label(r, [c for c in knob_cols if c != r.get("knob")]) if knob_cols else "all"
        diff = _finite(r.get("median_diff_s"))
        rows.append(
            {
                "within": within,
                "change": f"{KNOB_LABELS.get(str(r.get('knob')), r.get('knob'))} {r.get('baseline')} -> {r.get('level')}",
                "calls": f"{r.get('n_baseline')} / {r.get('n_level')}",
                "median difference": "n/a"
                if diff is None
                else f"{diff:+.2f} s"
                if abs(diff) < 10
                else f"{diff:+.1f} s",
                "interval": _signed_interval(r.get("median_diff_lo"), r.get("median_diff_hi")),
                "verdict": str(r.get("verdict", "")),
            }
        )
    return Table(
        pd.DataFrame(rows, columns=["within", "change", "calls", "median difference", "interval", "verdict"]),
        "Only one level of each knob was run: no effect to compare.",
    )


def reference_table(reference: pd.DataFrame) -> Table:
    """:func:`nbp_kit.analysis.compare_reference` rows as: configuration, published, measured, verdict."""
    rows = []
    for r in reference.to_dict("records"):
        rows.append(
            {
                "configuration": f"{r['resolution']} · thinking {r['thinking_level']}",
                "calls": int(r["n"]),
                "published mean": f"{r['published_mean_low_s']:g}-{r['published_mean_high_s']:g} s",
                "measured mean": fmt_seconds(r["mean"]),
                "published P95": fmt_seconds(r["published_p95_s"]),
                "measured P95": fmt_seconds(r["p95"]),
                "P95 interval": fmt_interval(r["p95_lo"], r["p95_hi"]),
            }
        )
    return Table(
        pd.DataFrame(
            rows,
            columns=[
                "configuration",
                "calls",
                "published mean",
                "measured mean",
                "published P95",
                "measured P95",
                "P95 interval",
            ],
        ),
        "This run measured none of the configurations in the article's table.",
    )


def hours_table(table: pd.DataFrame) -> Table:
    """:func:`nbp_kit.analysis.hour_of_week` as: when, probes, median with its interval, against
    the usual, and the verdict of the corrected test."""
    rows = []
    for r in table.to_dict("records"):
        when = (
            f"{r['hour']:02d}:00"
            if r.get("day", -1) in (-1, None) or table["day"].nunique() == 1
            else f"{r['day_name']} {r['hour']:02d}:00"
        )
        ratio = _finite(r.get("median_ratio"))
        verdict = (
            "slower"
            if r.get("slower")
            else "faster"
            if r.get("faster")
            else "as usual"
            if r.get("enough")
            else "too few probes"
        )
        rows.append(
            {
                "hour": when,
                "probes": int(r["n"]),
                "median": fmt_seconds(r["median_s"]),
                "interval": fmt_interval(r["median_s_lo"], r["median_s_hi"]),
                "vs usual": "n/a" if ratio is None else f"{100 * (ratio - 1):+.0f} %",
                "verdict": verdict,
            }
        )
    return Table(pd.DataFrame(rows, columns=["hour", "probes", "median", "interval", "vs usual", "verdict"]))


def windows_table(windows: pd.DataFrame) -> Table:
    """:func:`nbp_kit.analysis.offpeak_windows` as: kind, window, hours, change with its interval."""
    rows = [
        {
            "kind": r["kind"],
            "window": r["label"],
            "hours": int(r["hours"]),
            "probes": int(r["n"]),
            "median": fmt_seconds(r["median_s"]),
            "change": f"{r['change_pct']:+.0f} % (CI {r['change_lo_pct']:+.0f} to {r['change_hi_pct']:+.0f} %)",
        }
        for r in windows.to_dict("records")
    ]
    return Table(
        pd.DataFrame(rows, columns=["kind", "window", "hours", "probes", "median", "change"]),
        "No hour differs significantly from the rest (after correcting for testing every hour): "
        "probe longer before scheduling around one.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RunAnswer:
    """The answer a report opens with; every field is worded from one analysis function.

    ``recommended`` is the row of :func:`~nbp_kit.analysis.best_config` (real-equivalent
    seconds), ``reference`` the measured rows of :func:`~nbp_kit.analysis.compare_reference`,
    ``timeouts`` :func:`~nbp_kit.analysis.recommend_timeouts` by resolution, ``effects``
    :func:`~nbp_kit.analysis.knob_effect` for each knob that varies.
    """

    what: str
    time_base: str
    bottleneck: str
    recommended: dict[str, Any]
    recommendation: str
    reference: pd.DataFrame
    comparison: list[str]
    timeouts: pd.DataFrame
    timeout_advice: list[str]
    effects: pd.DataFrame
    unknowns: list[str]

    def markdown(self) -> str:
        """The answer as Markdown: one paragraph per question, the unknowns as a list."""
        parts = [
            "## The answer",
            f"**What was run.** {self.what} {self.time_base}",
            f"**Bottleneck.** {self.bottleneck}",
            f"**Recommended configuration.** {self.recommendation}",
            "**Against the article's figures.** "
            + (" ".join(self.comparison) or "This run measured none of the article's configurations."),
            "**Timeout to use.** " + " ".join(self.timeout_advice),
            "**What the data cannot yet say.**",
            "\n".join(f"- {u}" for u in self.unknowns) or "- Nothing flagged.",
        ]
        return "\n\n".join(errors.redact(p) for p in parts)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def _what(frame: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    provider = meta.get("provider") or (
        ", ".join(sorted(frame["provider"].dropna().astype(str).unique())) if "provider" in frame else "?"
    )
    models = sorted(frame["model"].dropna().astype(str).unique()) if "model" in frame else []
    kind = (
        "the embedded emulator"
        if _finite(meta.get("time_scale")) not in (None, 1.0) or str(meta.get("clock", "")) in ("scaled", "virtual")
        else "the real service"
    )
    calls = int(frame["call_id"].nunique()) if "call_id" in frame else len(frame)
    ok = int((frame["status"] == "ok").sum()) if "status" in frame else 0
    knobs = "; ".join(
        f"{label} {text}"
        for label, text in plan_items(meta.get("plan"))
        if label in ("resolutions", "thinking levels", "aspect ratios", "grids", "repetitions")
    )
    cost = meta.get("cost_usd")
    if cost is None and "cost_usd" in frame:
        cost = float(pd.to_numeric(frame["cost_usd"], errors="coerce").fillna(0).sum())
    return (
        f"{calls} calls ({len(frame)} attempts, {ok} succeeded) to {provider}"
        f"{' (' + ', '.join(models) + ')' if models else ''} on {kind}"
        f"{': ' + knobs if knobs else ''}; recorded cost {fmt_money(cost)}."
    )


def _recommendation(best: pd.DataFrame, knobs: Sequence[str]) -> tuple[dict[str, Any], str]:
    if best.empty:
        return {}, "No configuration delivered images, so none can be recommended."
    r = best.iloc[0].to_dict()
    label = config_label(r, knobs) if knobs else "the one configuration run"
    text = (
        f"{label} ({r.get('reason', 'fastest')}): P95 {fmt_seconds(r['p95'])} "
        f"({fmt_interval(r['p95_lo'], r['p95_hi'])}), median {fmt_seconds(r['p50'])}, "
        f"{fmt_money(r['cost_per_image_usd'])} per delivered image."
    )
    return r, text


def _timeout_advice(t: pd.DataFrame, min_n: int) -> list[str]:
    if t.empty:
        return ["No successful attempts, so no timeout can be derived."]
    out = []
    for r in t.to_dict("records"):
        where = f"{r['resolution']}: " if "resolution" in r else ""
        if _finite(r.get("timeout_s")) is None:
            out.append(f"{where}no timeout can be derived (no successful attempts).")
            continue
        line = (
            f"{where}{fmt_seconds(r['timeout_s'], decimals=0)} per attempt (3 x the P99 of "
            f"{fmt_seconds(r['p99'])}) with {int(r['retries'])} retries"
        )
        if _finite(r.get("timeout_lo_s")) is not None:
            line += (
                f" (from {fmt_seconds(r['timeout_lo_s'], decimals=0)} to {fmt_seconds(r['timeout_hi_s'], decimals=0)})"
            )
        if _finite(r.get("article_timeout_s")) is not None:
            line += f"; the article suggests {fmt_seconds(r['article_timeout_s'], decimals=0)}"
        out.append(line + ".")
    return out


def run_answer(frame: pd.DataFrame, meta: Mapping[str, Any] | None = None, *, min_n: int = 20) -> RunAnswer:
    """The facts a report opens with, computed by the analysis functions on ``frame``.

    Latencies are real-equivalent seconds (:func:`latency_frame`); ``min_n`` is the sample
    size below which intervals and P99-based timeouts are flagged as unknown.

    >>> from nbp_kit.analysis import synthetic_attempts
    >>> a = run_answer(synthetic_attempts(600, seed=0, resolutions=("1K", "2K")), {"provider": "gemini"})
    >>> a.markdown().startswith("## The answer")
    True
    """
    from . import analysis
    from .analysis.frames import CONFIG_COLUMNS

    meta = dict(meta or {})
    real = latency_frame(frame)
    knobs = _varying(real, CONFIG_COLUMNS)
    unknowns: list[str] = []
    best = analysis.best_config(real, by=knobs or ())
    recommended, recommendation = _recommendation(best, knobs)
    reference = analysis.compare_reference(frame, min_n=min_n)  # rescales emulator runs itself
    measured = reference[reference["n"] > 0].reset_index(drop=True)
    comparison = [
        f"{r['resolution']} thinking {r['thinking_level']}: {r['verdict']}." for r in measured.to_dict("records")
    ]
    timeouts = analysis.recommend_timeouts(real, by=[c for c in ("resolution",) if c in real], min_n=min_n)
    effects = pd.concat(
        [
            analysis.knob_effect(real, k, min_n=min(min_n, 10))
            for k in knobs
            if k in ("resolution", "thinking_level", "aspect_ratio", "grid", "transport")
        ]
        or [pd.DataFrame(columns=["verdict"])],
        ignore_index=True,
    )
    ok = real[real["status"] == "ok"] if "status" in real else real
    small = [
        config_label(r, knobs) if knobs else "the run"
        for r in analysis.summarize(real, by=knobs, latency="attempt", min_n=min_n).to_dict("records")
        if int(r["n_latency"]) < min_n
    ]
    if small:
        unknowns.append(
            f"Intervals for {', '.join(small)}: fewer than {min_n} successful calls each, "
            "so P95s are point estimates and the timeouts above are rough."
        )
    for r in effects.to_dict("records"):
        verdict = str(r.get("verdict", ""))
        if any(word in verdict for word in _OPEN_VERDICTS):
            where = config_label(r, [c for c in knobs if c in r and c != r.get("knob")])
            unknowns.append(
                f"Whether {r.get('knob', 'the knob').replace('_', ' ')} {r.get('level')} differs from "
                f"{r.get('baseline')}" + (f" ({where})" if where != "all" else "") + f": {verdict}."
            )
    if not measured.empty and not measured["p95_in_ci"].any() and measured["p95_lo"].isna().all():
        unknowns.append("Whether the article's P95s hold: no measured P95 has an interval yet.")
    span_h = _span_hours(frame)
    if span_h < 24 * 7 * 4:
        span = f"{span_h:.1f} hours" if span_h >= 1 else f"{max(span_h * 60, 1):.0f} minutes"
        unknowns.append(
            f"When in the week the service is fastest: this run spans {span}; time-of-week "
            "claims need several weeks of probes (`nbp-kit probe`, notebook 04)."
        )
    if "time_scale" in frame and (pd.to_numeric(frame["time_scale"], errors="coerce") != 1.0).any():
        unknowns.append("How the real service behaves: these are the emulator's modelled latencies.")
    if ok.empty:
        unknowns.append("Anything about latency: no attempt succeeded.")
    return RunAnswer(
        what=_what(frame, meta),
        time_base=time_base(frame),
        bottleneck=analysis.bottleneck(real),
        recommended=recommended,
        recommendation=recommendation,
        reference=measured,
        comparison=comparison,
        timeouts=timeouts,
        timeout_advice=_timeout_advice(timeouts, min_n),
        effects=effects,
        unknowns=unknowns,
    )


def _span_hours(frame: pd.DataFrame) -> float:
    from .analysis.offpeak import event_times

    if frame.empty:
        return 0.0
    t = event_times(frame)
    t = t[pd.notna(t)]
    return float((t.max() - t.min()) / 3600) if len(t) else 0.0
