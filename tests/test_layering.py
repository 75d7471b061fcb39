"""The house style's promises about imports, read from the source with `ast` (no import runs):

- models/ imports neither sweeps/ nor analysis/; analysis/ imports neither torch nor Hydra;
- inside sweeps/, each subpackage keeps to what its docstring allows (run/ is Hydra-free, ...);
- inside analysis/, each room imports only the rooms below it (inputs <- laws <- prediction <-
  planning <- report <- command);
- no import cycle among the modules of models/, sweeps/ and analysis/ (any import, at any level);
- no private name (`_x`) is imported from another module of these packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "sweeps", "analysis")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import statement of a module, at any level."""
    path = MODULES[name]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                parts = name.split(".")
                if path.name != "__init__.py":
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
    return out


def _project_targets(name: str) -> set[str]:
    """The project modules `name` imports (a `from pkg import mod` counts as importing pkg.mod);
    imports of a package's __init__ are left out (the package itself, not one of its modules)."""
    targets = set()
    for base, names in _imports(name):
        for cand in [f"{base}.{n}" for n in names] + [base]:
            while cand and cand not in MODULES:
                cand = cand.rpartition(".")[0]
            if cand and cand != name and not name.startswith(cand + "."):
                if MODULES[cand].name != "__init__.py":
                    targets.add(cand)
    return targets


def _top_names(name: str) -> set[str]:
    return {base.split(".")[0] for base, _ in _imports(name) if base}


def _all_imported(name: str) -> set[str]:
    return {base for base, _ in _imports(name)}


def _in(pkg: str) -> list[str]:
    return [m for m in MODULES if m == pkg or m.startswith(pkg + ".")]


# (package, forbidden import prefixes): what each layer must never import
FORBIDDEN = [
    ("models", ("sweeps", "analysis", "hydra", "omegaconf")),
    ("analysis", ("torch", "hydra", "omegaconf")),
    ("sweeps.run", ("hydra", "omegaconf", "sweeps.sweep", "sweeps.branches", "sweeps.tuning")),
    ("sweeps.data", ("torch", "hydra", "omegaconf", "sweeps.run", "sweeps.sweep", "sweeps.tuning")),
    ("sweeps.branches", ("hydra", "omegaconf", "sweeps.sweep", "sweeps.tuning")),
    ("sweeps.tuning", ("hydra", "omegaconf", "sweeps.sweep")),
    ("sweeps.sweep", ("sweeps.tuning",)),
    ("sweeps.sweep.status", ("torch", "hydra", "omegaconf", "models")),  # instant, on a laptop
    ("sweeps.records", ("torch", "hydra", "omegaconf", "numpy", "models")),  # stdlib only
    ("sweeps.run_record", ("torch", "hydra", "omegaconf", "numpy", "models", "sweeps.run")),
    ("sweeps.config", ("torch", "hydra", "omegaconf", "numpy", "models")),
    ("sweeps", ("analysis",)),
    # analysis/ by concern: inputs <- laws <- prediction <- report <- command (docs/architecture.md)
    ("analysis.inputs", ("analysis.laws", "analysis.prediction", "analysis.report",
                         "analysis.command", "analysis.hparams", "analysis.planning")),
    ("analysis.laws", ("analysis.prediction", "analysis.report", "analysis.command",
                       "analysis.hparams", "analysis.planning")),
    ("analysis.prediction", ("analysis.report", "analysis.command", "analysis.hparams",
                             "analysis.planning")),
    ("analysis.planning", ("analysis.report", "analysis.command", "analysis.hparams")),
    ("analysis.report", ("analysis.command",)),
    ("analysis.errors", ("analysis.",)),
    ("analysis.result_types", ("analysis.",)),
]


@pytest.mark.parametrize(("pkg", "forbidden"), FORBIDDEN, ids=[p for p, _ in FORBIDDEN])
def test_a_layer_never_imports_what_it_must_not(pkg: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(
        f"{mod} imports {target}"
        for mod in _in(pkg)
        for target in _all_imported(mod)
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    edges = {m: _project_targets(m) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                cycles.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = sorted(
        f"{mod}: from {base} import {n}"
        for mod in MODULES
        for base, names in _imports(mod)
        if base.split(".")[0] in PACKAGES
        for n in names
        if n.startswith("_") and not n.startswith("__")
    )
    assert not bad, "\n".join(bad)


def test_the_checks_see_the_tree() -> None:
    """Guards the guards: a moved package would make every check above pass vacuously."""
    seen = {"models.gpt", "sweeps.run.loop", "sweeps.sweep.compose", "analysis.report.build"}
    assert seen <= set(MODULES)
    assert "sweeps.run.identity" in _project_targets("sweeps.run.runner")
    assert "torch" in _top_names("models.gpt")


def test_analysis_module_names_tell_apart_and_stay_readable() -> None:
    """No two modules of analysis/ whose names differ only by a suffix or a plural (tables.py /
    table_files.py / table_checks.py once stood side by side), and none over 400 lines."""
    names = sorted({m.rpartition(".")[2] for m in _in("analysis")} - {"analysis", "__main__"})
    alike = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if b.startswith(a + "_") or a.startswith(b + "_") or a.rstrip("s") == b.rstrip("s")
    ]
    assert not alike, alike
    long = {m: n for m in _in("analysis") if (n := len(MODULES[m].read_text().splitlines())) > 400}
    assert not long, long
