"""The package's layers hold: imports point down only, and no module imports itself back.

foundation <- providers <- client <- runs <- analysis <- faces (plots, widgets, report, presenting, cli);
the emulator sees only the foundation and is seen only by the faces. Every import counts,
including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "nbp_kit"

FOUNDATION = {
    "nbp_kit.errors",
    "nbp_kit.spec",
    "nbp_kit.records",
    "nbp_kit._paths",
    "nbp_kit.profiles",
    "nbp_kit.timers",
}
LAYERS = {"foundation": 0, "providers": 1, "client": 2, "runs": 3, "analysis": 4, "faces": 5}
FACES = {"nbp_kit.plots", "nbp_kit.widgets", "nbp_kit.report", "nbp_kit.cli", "nbp_kit.presenting"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module in FACES:
        return "faces"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ("providers", "client", "runs", "analysis", "emulator"):
        return parts[1]
    raise AssertionError(f"{module} is in no layer; add it to one in tests/test_layers.py")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def imports_of(module: str, path: Path, known: set[str], *, unknown: list[str] | None = None) -> set[str]:
    """Every nbp_kit module ``module`` imports, anywhere in the file (``unknown`` collects targets that do not exist)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "nbp_kit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "nbp_kit":
                continue
            if target not in known and unknown is not None:
                unknown.append(f"{module}: from {target} import ...")
            for alias in node.names:  # ``from . import images`` names a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def allowed(src: str, dst: str) -> bool:
    if src == "nbp_kit":  # the public facade names everything (lazily)
        return True
    a, b = layer_of(src), layer_of(dst)
    if a == b:
        return True
    if b == "emulator":
        return a == "faces"
    if a == "emulator":
        return b == "foundation"
    return LAYERS[b] < LAYERS[a]


def test_every_import_points_down() -> None:
    bad = sorted(f"{src} -> {dst}" for src, dsts in graph().items() for dst in dsts if not allowed(src, dst))
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    g = graph()
    g.pop("nbp_kit")  # the facade imports lazily from everything; nothing below may import it back
    cycles = find_cycles(g)
    assert not cycles, f"import cycles: {cycles}"


def test_every_package_import_names_a_module_that_exists() -> None:
    # a function-level import of a module that moved fails only when that function runs
    mods = modules()
    unknown: list[str] = []
    for m, p in mods.items():
        imports_of(m, p, set(mods), unknown=unknown)
    assert not unknown, "imports of modules that do not exist:\n" + "\n".join(sorted(unknown))


def test_cycle_finder_finds_a_planted_cycle() -> None:
    # the checker itself must be able to fail
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not allowed("nbp_kit.providers.base", "nbp_kit.client.core")
    assert not allowed("nbp_kit.emulator.app", "nbp_kit.providers.base")


def test_nothing_below_imports_the_facade() -> None:
    g = graph()
    users = sorted(m for m, dsts in g.items() if "nbp_kit" in dsts and m != "nbp_kit")
    assert not users, f"modules importing the package facade (import from the module that owns the name): {users}"


HEAVY = ("pandas", "plotly", "pyarrow", "hypercorn", "papermill", "nbconvert")


def test_import_and_client_stay_light() -> None:
    code = (
        "import sys, nbp_kit; nbp_kit.Client; nbp_kit.ImageSpec; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_DIR.parent
    )
    assert out.stdout.strip() == "", f"import nbp_kit; nbp_kit.Client loaded: {out.stdout.strip()}"
