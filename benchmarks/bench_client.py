"""How close the client gets to the physical floor, and what it costs in CPU.

For 1K, 2K and 4K on a warm connection, against the emulator run as a *separate process*
(so its CPU is not counted as the client's), this prints a Markdown table of:

* end-to-end: the attempt's ``total_s`` (scheduled -> image verified and saved);
* floor: server queue + generation (from ``Server-Timing``) + one round trip + bytes / bandwidth;
* ratio = end-to-end / floor (target <= 1.02);
* client CPU per image (``time.process_time`` of this process over the calls).

Run: ``.venv/bin/python benchmarks/bench_client.py [--time-scale 0.25] [--reps 3]``.
The ratio is taken side by side in one run, so machine noise affects both terms alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbp_kit import Client, ImageSpec
from nbp_kit._paths import PROFILES_DIR  # noqa: E402


class _EmulatorProcess:
    """``python -m nbp_kit.emulator`` in a child process; the URL is read from its first line."""

    def __init__(self, *, network: str, time_scale: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "nbp_kit.emulator",
                "--port",
                "0",
                "--network",
                network,
                "--time-scale",
                str(time_scale),
                "--no-faults",
                "--no-quotas",
                "--api-key",
                "bench-key",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()  # blocks until the server is listening
        if "serving at" not in line:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.base_url = line.split("serving at", 1)[1].split()[0]
        self.api_key = "bench-key"
        self.ca_path = None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run(*, time_scale: float, reps: int, network: str) -> list[dict]:
    net = json.loads((PROFILES_DIR / "networks.json").read_text())[network]
    rtt_s = float(net.get("rtt_ms", 0)) / 1000.0
    bw = net.get("bandwidth_mbps")
    emu = _EmulatorProcess(network=network, time_scale=time_scale)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as out, Client.for_emulator(emu, output_dir=out) as client:
            client.generate("warm-up", ImageSpec(resolution="1K"), seed=0)  # connection + pool set up
            for res in ("1K", "2K", "4K"):
                spec = ImageSpec(resolution=res)
                client.generate("bench", spec, seed=1)  # the emulator renders and caches this image once
                ratios, totals, floors, cpus, dls, decodes = [], [], [], [], [], []
                for _ in range(reps):
                    cpu0 = time.process_time()
                    gen = client.generate("bench", spec, seed=1)
                    cpus.append(time.process_time() - cpu0)
                    a = gen.final
                    assert a.connection_reused, "the benchmark must run on a warm connection"
                    transfer = a.bytes_down * 8 / (bw * 1e6) if bw else 0.0
                    floor = a.server_queue_s + a.server_generation_s + rtt_s + transfer
                    totals.append(a.total_s)
                    floors.append(floor)
                    ratios.append(a.total_s / floor)
                    dls.append(a.download_s)
                    decodes.append((a.parse_s or 0) + (a.decode_s or 0) + (a.save_s or 0))
                rows.append(
                    {
                        "resolution": res,
                        "reps": reps,
                        "end_to_end_s": statistics.median(totals),
                        "floor_s": statistics.median(floors),
                        "ratio": statistics.median(ratios),
                        "ratio_max": max(ratios),
                        "download_s": statistics.median(dls),
                        "parse_decode_save_s": statistics.median(decodes),
                        "client_cpu_s": statistics.median(cpus),
                        "mb_on_wire": a.bytes_down / 1e6,
                    }
                )
    finally:
        emu.stop()
    return rows


def markdown(rows: list[dict], *, time_scale: float, network: str) -> str:
    lines = [
        f"network `{network}`, emulator time_scale {time_scale}, warm HTTP/1.1 connection, median of {rows[0]['reps']}",
        "",
        "| resolution | MB on wire | end-to-end s | floor s | ratio (median / max) | download s | parse+decode+save s | client CPU s/image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['resolution']} | {r['mb_on_wire']:.2f} | {r['end_to_end_s']:.3f} | {r['floor_s']:.3f} | "
            f"{r['ratio']:.3f} / {r['ratio_max']:.3f} | {r['download_s']:.3f} | {r['parse_decode_save_s']:.3f} | "
            f"{r['client_cpu_s']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-scale", type=float, default=1.0, help="emulator time scale (1.0 = real generation times)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--network", default="office-100mbps")
    args = p.parse_args(argv)
    rows = run(time_scale=args.time_scale, reps=args.reps, network=args.network)
    print(markdown(rows, time_scale=args.time_scale, network=args.network))


if __name__ == "__main__":
    main()
