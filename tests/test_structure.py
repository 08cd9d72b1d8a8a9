"""The layering every change must keep, read from the source (no imports run):

- no import cycle among the project's modules, lazy imports inside functions included (a lazy
  import back is still a circle);
- ``common`` imports no project package; ``algorithms`` imports only ``common``; ``tasks`` only
  ``common``; ``bench.config`` (the config dataclasses) no other ``bench`` module;
- the trainer never touches OmegaConf or Hydra: it sees the typed ``RunConfig`` only.

``python -m pytest tests/test_structure.py`` is the check (make test and CI run it).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("algorithms", "bench", "common", "tasks")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports anywhere in its body (absolute imports only: the
    project uses no relative ones)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{module}: relative import of {node.module}"
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [s for s in subs if s in known] or [node.module]  # `from pkg import submodule`
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a package: its deepest project module
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imported(module, path, known) for module, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as sorted names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("package, allowed", [
    ("common", set()),
    ("algorithms", {"common"}),
    ("tasks", {"common"}),
])
def test_lower_packages_import_only_what_is_below_them(package, allowed):
    graph = import_graph()
    wrong = {f"{m} -> {d}" for m, deps in graph.items() if m.split(".")[0] == package
             for d in deps if d.split(".")[0] not in allowed | {package}}
    assert not wrong


def test_the_config_dataclasses_are_a_leaf_of_bench():
    assert not {d for d in import_graph()["bench.config"] if d.startswith("bench")}


def test_the_trainer_sees_no_omegaconf():
    text = (ROOT / "bench" / "training" / "trainer.py").read_text()
    tree = ast.parse(text)
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {n for n in names if n.split(".")[0] in ("omegaconf", "hydra")}
    assert "bench.compose" not in names


def test_importing_the_tasks_loads_no_torch():
    """The scoring workers import only ``tasks`` (and what a suite needs): no torch, numpy's
    heavier users or the harness, so a worker starts in about a second."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "pandas", "bench", "algorithms")
    done = subprocess.run([sys.executable, "-c", "import sys, tasks; "
                           f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
