"""Reproducible write-ups: a papermill-executed notebook exported to one self-contained HTML file.

``build_report(run_id)`` runs ``notebooks/report.ipynb`` with the run id and store path as
papermill parameters, converts the executed notebook to HTML with nbconvert and writes it
only after scanning it for secrets. The file needs no network: plotly.js is embedded once,
figures are inline, thumbnails are base64 ``<img>`` tags.

The helpers below are what notebooks call so they hold no logic of their own:

- :func:`open_session` decides emulator or real provider and opens a client (and a store);
- :func:`use_inline_plotly` makes figures render offline in notebooks and reports;
- :func:`thumbnails_html` turns saved images into small labelled thumbnails;
- :func:`run_metadata` and :func:`environment` describe what was measured and where.

>>> from nbp_kit.report import build_report
>>> path = build_report("r-20260101-abc")          # doctest: +SKIP
>>> path.name                                       # doctest: +SKIP
'report-r-20260101-abc.html'
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
import platform
import re
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import errors
from ._paths import NOTEBOOKS_DIR, RUNS_DIR
from .errors import ConfigError, StoreError

#: The report template executed by :func:`build_report`.
REPORT_NOTEBOOK = NOTEBOOKS_DIR / "report.ipynb"
#: Environment variables that may hold real keys; their values must never reach a report.
SECRET_ENV_VARS: tuple[str, ...] = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "NBP_KIT_RELAY_KEY", "OPENAI_API_KEY")
#: Thumbnails stay under this many bytes each (JPEG), so notebooks and reports stay small.
THUMBNAIL_MAX_BYTES = 50_000
#: plotly renderer that works offline in Jupyter, nbconvert HTML and in nbclient tests:
#: the JSON mimetype (tests and JupyterLab read it) plus HTML with plotly.js embedded once.
INLINE_PLOTLY_RENDERER = "plotly_mimetype+notebook"

_EXTERNAL_SCRIPT_RE = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>')
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_PACKAGES = ("nbp-kit", "httpx2", "h2", "plotly", "pandas", "numpy", "pillow", "papermill", "nbconvert", "ipykernel")


def default_store_path() -> Path:
    """Where runs live unless told otherwise (``NBP_KIT_RUNS`` moves it)."""
    return RUNS_DIR / "nbp_kit.sqlite"


# --------------------------------------------------------------------------- secrets


def secrets_in_environment() -> list[str]:
    """Values of key-holding environment variables plus every registered secret."""
    found = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    # errors keeps the registry private; reading it here keeps one registry for the whole kit.
    found.extend(getattr(errors, "_SECRETS", ()))
    return sorted({s for s in found if s and len(s) >= 4})


def secret_forms(secret: str) -> tuple[str, ...]:
    """The raw, URL-encoded and base64 forms under which a secret could leak."""
    return (
        secret,
        urllib.parse.quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    )


def scrub_secrets(text: str, secrets: Iterable[str] | None = None) -> tuple[str, int]:
    """Replace every form of every secret in ``text``; returns (clean text, replacements).

    Unlike :func:`nbp_kit.errors.redact` this does not touch key-looking values, so the
    embedded plotly.js bundle is left intact.

    >>> scrub_secrets("a canary-0123456789abcdef b", ["canary-0123456789abcdef"])
    ('a [REDACTED] b', 1)
    """
    secrets = secrets_in_environment() if secrets is None else list(secrets)
    count = 0
    for secret in secrets:
        for form in secret_forms(secret):
            if form and form in text:
                count += text.count(form)
                text = text.replace(form, "[REDACTED]")
    return text, count


# --------------------------------------------------------------------------- notebook helpers


def use_inline_plotly() -> str:
    """Render plotly figures offline: JSON for Jupyter plus HTML with plotly.js inline once.

    ``notebook_connected`` would fetch plotly.js from a CDN and break offline reports.

    >>> use_inline_plotly()
    'plotly_mimetype+notebook'
    """
    import plotly.io as pio

    pio.renderers.default = INLINE_PLOTLY_RENDERER
    return INLINE_PLOTLY_RENDERER


def thumbnail_jpeg(path: str | Path, *, max_px: int = 320, max_bytes: int = THUMBNAIL_MAX_BYTES) -> bytes:
    """A downscaled JPEG (PNG if transparent) of the image at ``path``, at most ``max_bytes``.

    Never the full image: a 4K PNG becomes a few tens of kilobytes.

    >>> len(thumbnail_jpeg("data/runs/r1/a1.png")) <= 50_000   # doctest: +SKIP
    True
    """
    from .client.images import thumbnail

    if not isinstance(max_px, int) or max_px < 32:
        raise ConfigError(f"max_px={max_px!r} is not accepted; use an integer of 32 pixels or more")
    return thumbnail(Path(path).read_bytes(), max_bytes=max_bytes, max_side=max_px)


def _fmt_latency(value: Any) -> str:
    try:
        return f"{float(value):.2f} s"
    except (TypeError, ValueError):
        return "n/a"


def thumbnails_html(frame: Any, *, limit: int = 12, max_px: int = 240, columns: int = 4) -> str:
    """HTML grid of base64 JPEG thumbnails for the successful attempts in ``frame``.

    Each tile is labelled with its configuration, its latency in real-equivalent seconds
    (emulator runs scaled back, see :func:`nbp_kit.analysis.real_seconds`) and its cost. Rows without a readable
    image are skipped, so a failed or deleted file never breaks a report.

    >>> from IPython.display import HTML                  # doctest: +SKIP
    >>> HTML(thumbnails_html(store.attempts([run_id])))  # doctest: +SKIP
    """
    from .presenting import fmt_money

    if limit < 1:
        raise ConfigError(f"limit={limit!r} is not accepted; use 1 or more")
    rows = _image_rows(frame)
    tiles = []
    for row in rows[:limit]:
        try:
            data = thumbnail_jpeg(row["image_path"], max_px=max_px)
        except (OSError, errors.NbpError):
            continue  # a deleted or unreadable file must not break a report
        b64 = base64.b64encode(data).decode()
        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        label = html.escape(
            f"{_config_label(row)} · {_fmt_latency(row.get('total_s'))} · {fmt_money(row.get('cost_usd'))}"
        )
        prompt = html.escape(str(row.get("prompt") or "")[:80])
        tiles.append(
            f'<figure style="margin:4px;text-align:center">'
            f'<img src="data:{mime};base64,{b64}" alt="{label}" style="max-width:{max_px}px"/>'
            f'<figcaption style="font-size:11px">{label}<br/><i>{prompt}</i></figcaption></figure>'
        )
    if not tiles:
        return "<p><i>No images to show for this selection.</i></p>"
    return (
        f'<div style="display:grid;grid-template-columns:repeat({columns},auto);gap:4px">' + "".join(tiles) + "</div>"
    )


def _config_label(row: dict[str, Any]) -> str:
    parts = [
        str(row.get("resolution") or "?"),
        str(row.get("aspect_ratio") or "?"),
        f"think={row.get('thinking_level') or 'default'}",
    ]
    grid = row.get("grid")
    if grid and grid != "1x1":
        parts.append(f"grid={grid}")
    return " ".join(parts)


def _image_rows(frame: Any) -> list[dict[str, Any]]:
    from .presenting import latency_frame

    if frame is None or len(frame) == 0 or "image_path" not in frame:
        return []
    rows = latency_frame(frame).to_dict("records")  # labels in real-equivalent seconds
    return [
        r
        for r in rows
        if r.get("status") == "ok" and isinstance(r.get("image_path"), str) and Path(r["image_path"]).is_file()
    ]


def show_image(path: str | Path, *, max_px: int = 384) -> Any:
    """An IPython image (a thumbnail, at most 50 KB) to display inline in a notebook.

    >>> show_image(gen.image_path)   # doctest: +SKIP
    """
    from IPython.display import Image as _Image

    data = thumbnail_jpeg(path, max_px=max_px)
    return _Image(data=data, format="png" if data.startswith(b"\x89PNG") else "jpeg")


def labelled_attempts(store: Any, runs: dict[str, str], *, column: str = "variant") -> Any:
    """The attempts of several runs, with a ``column`` naming each run's label.

    Use it to compare runs that differ in one setting the records do not carry (a network
    profile, a concurrency mode):

    >>> df = labelled_attempts(store, {"8 Mbps": r1, "loopback": r2}, column="network")  # doctest: +SKIP
    >>> plots.latency_box(df, by="network")                                               # doctest: +SKIP
    """
    import pandas as pd

    if not runs:
        raise ConfigError("runs={} is not accepted; pass a mapping label -> run_id")
    frames = []
    for label, run_id in runs.items():
        frame = store.attempts([run_id])
        frames.append(frame.assign(**{column: str(label)}))
    return pd.concat(frames, ignore_index=True)


#: Columns of :func:`summary_table`, after the config columns that vary.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "latency",
    "n",
    "success_rate",
    "mean",
    "p50",
    "p95",
    "p95_lo",
    "p95_hi",
    "small_sample",
)


def summary_table(frame: Any, *, latency: str = "attempt", min_n: int = 5) -> Any:
    """:func:`nbp_kit.analysis.summarize` narrowed for reading: varying config columns, n,
    success rate, mean, P50 and P95 with its interval.

    >>> summary_table(store.attempts([run_id]))   # doctest: +SKIP
    """
    from .analysis import summarize
    from .analysis.frames import CONFIG_COLUMNS

    table = summarize(frame, latency=latency, min_n=min_n)
    varying = [c for c in CONFIG_COLUMNS if c in table and table[c].nunique(dropna=False) > 1]
    keep = varying or [c for c in CONFIG_COLUMNS if c in table][:1]
    return table[[*keep, *[c for c in SUMMARY_COLUMNS if c in table]]]


def environment() -> dict[str, str]:
    """Where the numbers were produced: Python, OS, CPU count and package versions.

    >>> "python" in environment()
    True
    """
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "executable": sys.executable,
    }
    for name in _PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env


def run_metadata(store: Any, run_id: str) -> dict[str, Any]:
    """The run's row from the store plus counts from its attempts (no request headers, no key).

    >>> run_metadata(store, run_id)["attempts"]   # doctest: +SKIP
    36
    """
    import datetime as _dt

    run = store.get_run(run_id)  # unknown id -> ConfigError naming the known runs
    meta: dict[str, Any] = {k: v for k, v in run.items() if k not in ("versions",)}
    if isinstance(meta.get("created_at"), (int, float)):
        meta["created_at"] = _dt.datetime.fromtimestamp(meta["created_at"], _dt.UTC).isoformat(timespec="seconds")
    attempts = store.attempts([run_id])
    meta["attempts"] = int(len(attempts))
    if len(attempts):
        meta["ok"] = int((attempts["status"] == "ok").sum())
        meta["errors"] = int((attempts["status"] == "error").sum())
        meta["calls"] = int(attempts["call_id"].nunique())
        if "cost_usd" in attempts:
            meta["cost_usd"] = round(float(attempts["cost_usd"].fillna(0).sum()), 4)
        for column in ("clock", "time_scale", "base_host"):
            if column in attempts:
                meta[column] = ", ".join(sorted({str(v) for v in attempts[column].dropna().unique()}))
    return meta


def metadata_table(mapping: dict[str, Any]) -> Any:
    """A two-column DataFrame (field, value) that displays well in notebooks and HTML."""
    import pandas as pd

    text = {
        k: errors.redact(v if isinstance(v, str) else repr(v) if isinstance(v, (dict, list, tuple)) else str(v))
        for k, v in mapping.items()
    }
    return pd.DataFrame({"field": list(text), "value": list(text.values())})


def environment_html(env: dict[str, str] | None = None) -> str:
    """The environment as a list folded away in ``<details>`` (open it when numbers disagree)."""
    from .presenting import items_html

    env = environment() if env is None else env
    return (
        "<details><summary><b>Environment</b> (Python, OS, CPUs, package versions)</summary>"
        + items_html(env.items())
        + "</details>"
    )


def latest_run_id(store: Any) -> str | None:
    """The newest run in ``store`` (None when it holds none)."""
    runs = store.runs()
    return str(runs["run_id"].iloc[0]) if len(runs) else None


#: What a reader is told when there is no run to report on.
NO_RUN_HELP = (
    "To make one: `make demo` (the emulator, a small sweep and this report), or "
    "`nbp-kit sweep ...` against the emulator or a real provider, then "
    "`nbp-kit report RUN_ID`. Or pass `run_id` and `store_path` to this notebook."
)


@dataclasses.dataclass(slots=True)
class ReportRun:
    """One run opened for a write-up: its attempts, metadata and the answer, or why there is none.

    ``found`` is False when the store or the run is missing; ``headline`` then says how to
    make one, so a template run on its own explains itself instead of failing.
    """

    found: bool
    headline: str
    run_id: str = ""
    store: Any = None
    frame: Any = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def latency(self) -> Any:
        """The attempts with latencies in real-equivalent seconds (emulator runs scaled back)."""
        from .presenting import latency_frame

        return latency_frame(self.frame)

    def answer(self, *, min_n: int = 20) -> Any:
        """:func:`nbp_kit.presenting.run_answer` for this run (None when there is no run)."""
        from .presenting import run_answer

        return run_answer(self.frame, self.meta, min_n=min_n) if self.found else None

    def metadata_html(self) -> str:
        """Run metadata as a readable list (the plan as its knobs), empty when there is no run."""
        from .presenting import items_html, metadata_items

        return items_html(metadata_items(self.meta)) if self.found else ""

    def _repr_markdown_(self) -> str:
        return self.headline


def load_run(run_id: str = "", store_path: str | Path = "") -> ReportRun:
    """Open ``run_id`` (default: the newest run) in ``store_path`` (default: the default store).

    Never raises for a missing store or run: the returned :class:`ReportRun` says what is
    missing and how to make a run (``make demo``, ``nbp-kit sweep``).

    >>> load_run(store_path="/nonexistent/x.sqlite").found
    False
    """
    from .runs.store import RunStore

    path = Path(store_path) if store_path else default_store_path()
    if not path.is_file():
        return ReportRun(False, f"**No run store at `{path}` yet.** {NO_RUN_HELP}")
    try:
        store = RunStore(path, read_only=True)
    except StoreError as exc:
        return ReportRun(False, f"**The run store at `{path}` cannot be read** ({exc}). {NO_RUN_HELP}")
    chosen = run_id or latest_run_id(store)
    if not chosen:
        return ReportRun(False, f"**The run store at `{path}` holds no run yet.** {NO_RUN_HELP}")
    if not store.has_run(chosen):
        return ReportRun(
            False, f"**Run `{chosen}` is not in `{path}`** (newest: `{latest_run_id(store)}`). {NO_RUN_HELP}"
        )
    frame = store.attempts([chosen])
    meta = run_metadata(store, chosen)
    which = "" if run_id else " (the newest in the store)"
    headline = (
        f"**Run `{chosen}`**{which}: {meta['attempts']} attempts, {meta.get('ok', 0)} succeeded, "
        f"{meta.get('errors', 0)} failed."
    )
    return ReportRun(True, headline, run_id=chosen, store=store, frame=frame, meta=meta)


@dataclasses.dataclass(slots=True)
class Session:
    """What a notebook measures against: the emulator (or None), a store and an image folder.

    ``mode`` is ``"emulator"`` or ``"real"``. ``target`` is what ``run_sweep`` takes (the
    emulator handle, or client settings for a real provider). Use it as a context manager,
    or call ``close()``; clients made by :meth:`client` are closed with it.

    >>> with open_session(use_emulator=True) as s:           # doctest: +SKIP
    ...     gen = s.client().generate("a red bicycle")
    ...     result = s.sweep(Plan(prompts=["a cat"], repetitions=3))
    """

    mode: str
    provider: str
    emulator: Any
    store: Any
    output_dir: Path
    _clients: list[Any] = dataclasses.field(default_factory=list)
    _tmp: Any = None

    @property
    def target(self) -> Any:
        """The emulator handle, or client settings for the real provider (the plan names it)."""
        return self.emulator if self.emulator is not None else {}

    @property
    def providers(self) -> tuple[str, ...]:
        """Providers this session can reach: both on the emulator, those with a key otherwise."""
        if self.emulator is not None:
            return ("gemini", "relay")
        return tuple(p for p in ("gemini", "relay") if key_available(p))

    @property
    def time_scale(self) -> float:
        """The emulator's time scale (1.0 against a real provider)."""
        return float(self.emulator.time_scale) if self.emulator is not None else 1.0

    def client(self, provider: str | None = None, **options: Any) -> Any:
        """A sync :class:`~nbp_kit.client.Client` for this session (closed with it).

        ``options`` are Client options, e.g. ``http2=False`` or ``stream=True``. Its
        attempts are recorded in the session's store (``session.store.attempts()``).
        """
        from .client.core import Client

        provider = provider or self.provider
        options.setdefault("output_dir", self.output_dir)
        options.setdefault("sink", self.store)  # every attempt lands in the session's store
        if self.emulator is not None:
            made = Client.for_emulator(self.emulator, provider=provider, **options)
        else:
            made = Client(provider, **options)
        self._clients.append(made)
        return made

    def sweep(self, plan: Any, **options: Any) -> Any:
        """``run_sweep(plan, self.target, store=self.store, ...)`` with quiet, local defaults."""
        from .runs.runner import run_sweep

        options.setdefault("store", self.store)
        options.setdefault("output_dir", self.output_dir)
        options.setdefault("progress", False)
        return run_sweep(plan, self.target, **options)

    def close(self) -> None:
        """Close the clients and stop the emulator (the store stays usable)."""
        try:
            for made in self._clients:
                made.close()
            self._clients.clear()
        finally:
            if self.emulator is not None:
                self.emulator.stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """One line for the reader: what the numbers come from."""
        if self.emulator is not None:
            return (
                f"Embedded emulator at {self.emulator.base_url} (profile {self.emulator.profile_name!r}, "
                f"time_scale {self.emulator.time_scale}): latencies are the emulator's model, scaled; "
                "multiply by 1/time_scale for service seconds."
            )
        return f"Real provider {self.provider!r}: every image is billed."


def key_available(provider: str) -> bool:
    """True when the environment holds a key for ``provider`` (so notebooks go real).

    >>> key_available("nope")
    False
    """
    if provider == "gemini":
        return bool(os.environ.get("GEMINI_API_KEY"))
    if provider == "relay":
        return bool(os.environ.get("NBP_KIT_RELAY_KEY") and os.environ.get("NBP_KIT_RELAY_BASE_URL"))
    return False


def open_session(
    provider: str = "gemini",
    *,
    use_emulator: bool | None = None,
    time_scale: float = 0.02,
    store_path: str | Path | None = None,
    store: Any = None,
    output_dir: str | Path | None = None,
    emulator_options: dict[str, Any] | None = None,
) -> Session:
    """The embedded emulator, or the real provider when a key is set.

    ``use_emulator=None`` means: the emulator unless :func:`key_available`. ``store_path=None``
    uses an in-memory store (or pass ``store=`` to share one between sessions) and
    ``output_dir=None`` a temporary image folder, so a notebook run leaves nothing behind;
    pass paths to keep runs and images. ``emulator_options`` go to ``emulator.start`` (e.g.
    ``{"network": "cross-border-8mbps"}``, ``{"tls": True}`` for HTTP/2, ``{"faults": True}``).

    >>> with open_session(use_emulator=True) as s:      # doctest: +SKIP
    ...     print(s.describe())
    """
    from .runs.store import RunStore

    if provider not in ("gemini", "relay"):
        raise ConfigError(f"provider={provider!r} is not accepted; use 'gemini' or 'relay'")
    if isinstance(time_scale, bool) or not (isinstance(time_scale, (int, float)) and time_scale > 0):
        raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number above 0")
    real = (not use_emulator) if use_emulator is not None else key_available(provider)
    if real and not key_available(provider):
        wanted = "GEMINI_API_KEY" if provider == "gemini" else "NBP_KIT_RELAY_KEY and NBP_KIT_RELAY_BASE_URL"
        raise ConfigError(f"use_emulator={use_emulator!r} needs a key for provider={provider!r}; set {wanted}")
    if store is None:
        store = RunStore(path=Path(store_path)) if store_path else RunStore.memory()
    tmp = None
    if output_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="nbp-images-")
        output_dir = tmp.name
    emu = None
    if not real:
        from . import emulator as _emulator

        options: dict[str, Any] = {"time_scale": time_scale, "faults": False, "quotas": False}
        options.update(emulator_options or {})
        emu = _emulator.start(**options)
    return Session(
        mode="real" if real else "emulator",
        provider=provider,
        emulator=emu,
        store=store,
        output_dir=Path(output_dir),
        _tmp=tmp,
    )


# --------------------------------------------------------------------------- build_report


def _team_store_url(url: str) -> str:
    """A PostgreSQL store URL for the report notebook; a password in it would land in the HTML."""
    import urllib.parse

    if urllib.parse.urlsplit(url).password is not None:
        raise ConfigError(
            "store_path=<postgresql URL with a password> is not accepted for a report (the URL is a notebook "
            "parameter and would be in the HTML); put the password in ~/.pgpass or PGPASSWORD instead"
        )
    return url


def build_report(
    run_id: str,
    *,
    store_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    notebook: str | Path | None = None,
    kernel_name: str = "python3",
    timeout_s: float = 600.0,
) -> Path:
    """Execute the report notebook for ``run_id`` and write a self-contained HTML file.

    Returns the HTML path (``out_dir/report-<run_id>.html``; ``out_dir`` defaults to the
    runs folder's ``reports/``). The HTML is scanned for secrets (raw, URL-encoded, base64)
    before it is written; any found are replaced and a ``RuntimeWarning`` is raised.

    >>> build_report("r-20260101-abc", out_dir="/tmp")   # doctest: +SKIP
    PosixPath('/tmp/report-r-20260101-abc.html')
    """
    import warnings

    import papermill as pm

    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise ConfigError(
            f"run_id={run_id!r} is not accepted; use the id printed by a sweep (letters, digits, '-', '_' and '.')"
        )
    from .runs.store import is_postgres_url

    if isinstance(store_path, str) and is_postgres_url(store_path):
        store_param = _team_store_url(store_path)
    else:
        store_path = Path(store_path) if store_path is not None else default_store_path()
        if not store_path.is_file():
            raise ConfigError(
                f"store_path={str(store_path)!r} does not exist; run a sweep first or pass the store's path"
            )
        store_param = str(store_path.resolve())
    notebook = Path(notebook) if notebook is not None else REPORT_NOTEBOOK
    if not notebook.is_file():
        raise ConfigError(f"notebook={str(notebook)!r} does not exist")
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ConfigError(f"timeout_s={timeout_s!r} is not accepted; use a number of seconds above 0")
    out_dir = Path(out_dir) if out_dir is not None else RUNS_DIR / "reports"
    # An unknown run fails here with the store's ConfigError (it lists the known runs), not
    # after starting a kernel as a PapermillExecutionError.
    from .runs.store import RunStore

    with RunStore(store_param, read_only=True) as check:
        check.get_run(run_id)

    with tempfile.TemporaryDirectory(prefix="nbp-report-") as tmp:
        executed = Path(tmp) / "report.ipynb"
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters={"run_id": run_id, "store_path": store_param},
            kernel_name=kernel_name,
            progress_bar=False,
            log_output=False,
            cwd=str(notebook.parent),
            execution_timeout=timeout_s,
        )
        body = notebook_to_html(executed)
    body, leaks = scrub_secrets(body)
    if leaks:
        warnings.warn(
            f"report for run_id={run_id!r}: {leaks} secret occurrence(s) were removed", RuntimeWarning, stacklevel=2
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"report-{run_id}.html"
    # Atomic: a reader never sees a half-written report.
    tmp_target = target.with_suffix(".html.tmp")
    tmp_target.write_text(body, encoding="utf-8")
    os.replace(tmp_target, target)
    return target


def notebook_to_html(path: str | Path, *, hide_code: bool = True) -> str:
    """Executed notebook -> one self-contained HTML page (no require.js, no CDN plotly).

    >>> notebook_to_html("executed.ipynb")[:15]   # doctest: +SKIP
    '<!DOCTYPE html>'
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(path), as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nb)
    # The lab template loads require.js from a CDN; with it, plotly.js would register as an
    # AMD module instead of window.Plotly, and offline it is a failed request. Plotly needs neither.
    body = body.replace(f'<script src="{exporter.require_js_url}"></script>', "")
    # MathJax from a CDN (nbconvert's template, plotly's per-figure tag) is unused here and
    # would be the page's only network request: drop every external script.
    return _EXTERNAL_SCRIPT_RE.sub("", body)
