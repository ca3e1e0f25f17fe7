"""The README stays true: its Python examples run, and every CLI command is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_the_two_quickstart_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quickstart and "make test" in quickstart
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index: int, tmp_path: Path) -> None:
    code = _python_blocks()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "NBP_KIT_RUNS": str(tmp_path / "runs")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "the example printed nothing"


def test_every_cli_command_is_documented() -> None:
    from nbp_kit import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    docs = README + (ROOT / "docs" / "cli.md").read_text()
    missing = [name for name in commands if f"nbp-kit {name}" not in docs]
    assert missing == []
    assert len(commands) >= 7


def test_no_merge_conflict_markers_are_left_in_the_sources_or_docs():
    """A merge left half-resolved shows its markers to every reader of the docs."""
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
    skip = {".venv", ".git", "node_modules", "__pycache__", "runs", "build"}
    hits = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if path.suffix in {".md", ".py", ".json", ".toml", ".cfg", ".txt", ".ipynb", ".j2", ".html"}
        and not skip.intersection(path.relative_to(ROOT).parts)
        and path.is_file()
        and marker.search(path.read_text(errors="replace"))
    ]
    assert hits == []
