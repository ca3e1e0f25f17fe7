"""Shared pieces of the benchmarks: the emulator in its own process, spreads over
repetitions, Markdown tables, the machine's description and the results document.

Every figure a benchmark reports is a *ratio* of two things measured side by side in the
same run, repeated; a :class:`Spread` carries min / median / max of those ratios::

    >>> spread([1.02, 1.01, 1.05]).fmt(3)
    '1.020 (1.010-1.050)'
    >>> print(markdown_table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |

The emulator runs as ``python -m benchmarks._harness serve CONFIG_JSON`` so that its CPU
and memory are not counted as the client's: :class:`EmulatorProcess` starts it, reads the
base URL from its first line, and stops it by closing its stdin.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"

# Emulator load observed by every benchmark (section, requests/s, MB/s), so the capacity
# section can show how far below the emulator's own ceiling the others ran.
DEMANDS: list[tuple[str, float, float]] = []


# --------------------------------------------------------------------------- statistics
@dataclasses.dataclass(frozen=True, slots=True)
class Spread:
    """min / median / max of repeated measurements (ratios, usually)."""

    min: float
    median: float
    max: float
    n: int

    def fmt(self, digits: int = 2, *, pct: bool = False) -> str:
        if self.n == 0:
            return "n/a"
        if pct:
            return f"{self.median:.{digits}%} ({self.min:.{digits}%}-{self.max:.{digits}%})"
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}-{self.max:.{digits}f})"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def spread(values: Iterable[float]) -> Spread:
    """Spread of ``values`` (empty -> n=0, NaN figures)."""
    vals = [float(v) for v in values]
    if not vals:
        return Spread(float("nan"), float("nan"), float("nan"), 0)
    return Spread(min(vals), statistics.median(vals), max(vals), len(vals))


# --------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One acceptance target and whether this run met it (None: not judged)."""

    name: str
    target: str
    measured: str
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "not judged"}[self.met]


@dataclasses.dataclass(slots=True)
class Section:
    """What one benchmark contributes to the document."""

    key: str
    title: str
    intro: str = ""
    tables: list[str] = dataclasses.field(default_factory=list)
    targets: list[Target] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    figures: dict[str, float] = dataclasses.field(default_factory=dict)  # for other sections to read


def run_alone(section: Any, doc: str | None) -> None:
    """``python -m benchmarks.bench_x [--quick]``: run one section and print what it found."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    ap.add_argument("--quick", action="store_true")
    s = section(quick=ap.parse_args().quick)
    print("\n\n".join(s.tables + s.notes))
    for t in s.targets:
        print(t)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells with ``|`` are escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_document(
    sections: Sequence[Section], *, machine: dict[str, str], command: str, quick: bool, wall_s: float
) -> str:
    """The whole ``docs/benchmarks.md``: machine, targets summary, then each section."""
    out = [
        "# Benchmarks",
        "",
        f"Written by `{command}` ({'QUICK smoke run: figures are not meaningful' if quick else 'full run'}), "
        f"{wall_s / 60:.1f} minutes. Every figure is a ratio of two things measured side by side in the "
        "same run, repeated; cells show **median (min-max)** over the repetitions. The emulator runs in "
        "its own process, so its CPU and memory are not counted as the client's.",
        "",
        "Run it: `make bench` (or `.venv/bin/python -m benchmarks`; `--quick` for a smoke run, "
        "`--only per_image,tail` for some). Each benchmark also runs alone: "
        "`python -m benchmarks.bench_per_image`, `bench_connections`, `bench_tail`, `bench_memory`, "
        "and the older `bench_emulator.py`, `bench_client.py`, `bench_quota.py`, `bench_analysis.py`.",
        "",
        "## Machine",
        "",
        markdown_table(["", ""], list(machine.items())),
        "",
        "## Targets",
        "",
    ]
    rows = [[t.name, t.target, t.measured, t.verdict, t.note] for s in sections for t in s.targets]
    out += [markdown_table(["benchmark", "target", "measured", "verdict", "cause / note"], rows), ""]
    for s in sections:
        out += [f"## {s.title}", "", f"_{s.seconds:.0f} s._ " + s.intro if s.intro else f"_{s.seconds:.0f} s._", ""]
        if s.error:
            out += [f"**Failed to run**: `{s.error}`", ""]
        for table in s.tables:
            out += [table, ""]
        out += [f"- {n}" for n in s.notes]
        if s.notes:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


class LoadWatch:
    """Samples the 1-minute load average every few seconds in a daemon thread (max and mean)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, name="bench-loadwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(2)
        self.samples.append(os.getloadavg()[0])
        return (
            f"start {self.samples[0]:.1f}, mean {statistics.fmean(self.samples):.1f}, "
            f"max {max(self.samples):.1f}, end {self.samples[-1]:.1f} (1-minute load average)"
        )


def machine_description(load: str = "") -> dict[str, str]:
    """What the figures were measured on: CPU, cores, memory, OS, Python, key packages, load."""
    import psutil

    desc = {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "packages": ", ".join(
            f"{d} {_version(d)}" for d in ("httpx2", "h2", "hypercorn", "openai", "google-genai", "tenacity", "pandas")
        ),
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "shared machine": "other engineers' test suites may run at the same time; hence ratios, not absolute times",
    }
    if load:
        desc["load during the run"] = load
    return desc


# --------------------------------------------------------------------------- emulator
class EmulatorProcess:
    """The emulator in a child process; quacks like :class:`nbp_kit.emulator.Emulator` for
    ``Client.for_emulator`` (``base_url``, ``relay_base_url``, ``api_key``, ``ca_path``).

    ``profile`` and ``network`` may be names or dicts (passed as JSON to the child).
    """

    def __init__(
        self,
        *,
        profile: str | dict[str, Any] = "default",
        network: str | dict[str, Any] = "loopback",
        time_scale: float = 1.0,
        tls: bool = False,
        faults: bool = False,
        quotas: bool = False,
        label: str = "",
    ) -> None:
        config = {
            "profile": profile,
            "network": network,
            "time_scale": time_scale,
            "tls": tls,
            # Any non-empty key is accepted: clients send API_KEY, bench_emulator its own.
            "faults": faults,
            "quotas": quotas,
            "api_key": None,
        }
        self.label = label
        self.time_scale = time_scale
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "benchmarks._harness", "serve", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the child listens (or dies)
        try:
            info = json.loads(line)
        except ValueError:
            self.proc.kill()
            raise RuntimeError(f"emulator process did not start: {line!r}") from None
        self.base_url: str = info["base_url"]
        self.ca_path: str | None = info["ca_path"]
        self.api_key = API_KEY
        self.pid = self.proc.pid
        self._t0 = time.perf_counter()
        self._stats_client: Any = None

    @property
    def relay_base_url(self) -> str:
        return self.base_url + "/v1"

    def stats(self) -> dict[str, Any]:
        """``GET /emulator/stats`` on a connection of its own (not the measured client's)."""
        import httpx2

        if self._stats_client is None:
            self._stats_client = httpx2.Client(verify=self.ca_path or True, timeout=30)
        return self._stats_client.get(self.base_url + "/emulator/stats").json()

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        if self.label:
            try:
                s = self.stats()
                wall = time.perf_counter() - self._t0
                DEMANDS.append((self.label, s["requests"] / wall, s["bytes_sent"] / wall / 1e6))
            except Exception:  # a dead emulator has no stats; the benchmark reports its own error
                pass
        if self._stats_client is not None:
            self._stats_client.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the child stops serving when its stdin closes
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _serve(config_json: str) -> None:
    from nbp_kit import emulator

    cfg = json.loads(config_json)
    emu = emulator.start(
        cfg["profile"],
        network=cfg["network"],
        time_scale=cfg["time_scale"],
        tls=cfg["tls"],
        faults=cfg["faults"],
        quotas=cfg["quotas"],
        api_key=cfg["api_key"],
    )
    print(json.dumps({"base_url": emu.base_url, "ca_path": emu.ca_path}), flush=True)
    try:
        sys.stdin.read()  # returns at EOF: the parent closed our stdin (or died)
    finally:
        emu.stop()


def fixed_profile(gen_s: dict[str, float], *, name: str = "bench-fixed") -> dict[str, Any]:
    """A profile with a fixed generation time per resolution (P95 = mean x 1.0001: a spread of
    about 0.01 %), no
    queue, tail, load curve, faults or quotas: every request's floor is known exactly."""
    from nbp_kit.emulator import load_profile

    profile = load_profile("default")
    profile = json.loads(json.dumps(profile))
    profile["name"] = name
    lat = profile["latency"]
    for res, cells in lat["cells"].items():
        for level in cells:
            cells[level] = {"mean_s": gen_s[res], "p95_s": gen_s[res] * 1.0001}
    lat["tail"] = {"prob": 0.0, "mult_min": 1.0, "mult_max": 1.0}
    lat["floor_s"] = 0.0
    lat["queue"] = {"mean_s": 0.0, "sigma": 0.0}
    profile["load"]["hour_factor"] = {}
    profile["overload"] = {"p503_base": 0.0, "p503_per_load": 0.0, "p503_per_utilisation": 0.0}
    return profile


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve(sys.argv[2])
    else:
        raise SystemExit("usage: python -m benchmarks._harness serve CONFIG_JSON")
