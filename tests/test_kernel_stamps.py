"""The disk cache's source stamps (``jitsolve.kernels.cpu.kernel_stamps``): a kernel file's
stamp covers it and every kernel file it imports, directly or not, so an edit recompiles
the kernels that depend on the edited file and no others."""
import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import jitsolve.kernels.cpu as cpu

ROOT = pathlib.Path(cpu.__file__).resolve().parent.parent        # the kernels package


def _ast_imports(root, path):
    """Reference for the regular expression: the kernel files ``path`` imports, from its
    syntax tree (relative imports, submodules named in ``from . import``, absolute
    ``jitsolve.kernels`` imports)."""
    top = "jitsolve.kernels"
    out = set()

    def add(base, dotted):
        stem = base.joinpath(*dotted.split(".")) if dotted else base
        for cand in (stem.with_name(stem.name + ".py"), stem / "__init__.py"):
            if cand.is_file():
                out.add(str(cand.resolve()))

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                mod = node.module or ""
            elif node.module and (node.module + ".").startswith(top + "."):
                base, mod = root, node.module[len(top) + 1:]
            else:
                continue
            add(base, mod)
            for alias in node.names:
                add(base, (mod + "." if mod else "") + alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name + ".").startswith(top + "."):
                    add(root, alias.name[len(top) + 1:])
    return out


def _closures(root):
    files = sorted(str(p.resolve()) for p in root.rglob("*.py"))
    deps = {f: _ast_imports(root, pathlib.Path(f)) for f in files}

    reach = {f: {f} | deps[f] for f in files}
    changed = True
    while changed:                    # transitive closure by fixed-point iteration
        changed = False
        for f in files:
            grown = set().union(*(reach[g] for g in reach[f]))
            if grown != reach[f]:
                reach[f], changed = grown, True
    common = set().union(*(reach[f] for f in files if f.endswith("__init__.py")))
    return {f: reach[f] | common for f in files}


def test_import_scan_agrees_with_the_syntax_tree():
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        got = cpu._kernel_imports(str(ROOT), os.path.normpath(str(path)), path.read_text())
        assert got == _ast_imports(ROOT, path), path.name


def _stamps(root):
    return {pathlib.Path(f).relative_to(root).as_posix(): d
            for f, d in cpu.kernel_stamps(os.path.normpath(str(root))).items()}


@pytest.mark.parametrize("edited", ["cpu/sde.py", "cpu/rosenbrock.py", "cpu/blas.py",
                                    "cpu/stencil.py", "cpu/stepcontrol.py",
                                    "cpu/complexpow.py", "cpu/__init__.py"])
def test_an_edit_restamps_exactly_the_files_that_import_it(tmp_path, edited):
    root = tmp_path / "kernels"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = _stamps(root)
    assert before == _stamps(ROOT)                 # the stamps do not depend on the place
    with open(root / edited, "a") as fh:
        fh.write("\n# an edit\n")
    after = _stamps(root)
    changed = {f for f in before if before[f] != after[f]}
    target = str((root / edited).resolve())
    expect = {pathlib.Path(f).relative_to(root.resolve()).as_posix()
              for f, c in _closures(root).items() if target in c}
    assert changed == expect
    assert edited in changed
    if edited == "cpu/sde.py":
        assert {"cpu/sde_adjoint.py", "cpu/sde_lockstep.py",
                "cpu/sde_ensemble_adjoint.py"} <= changed
        assert not changed & {"cpu/stencil.py", "cpu/krylov.py", "cpu/multigrid.py",
                              "cpu/erk.py", "cpu/stiff.py", "cpu/blas.py"}
    if edited == "cpu/rosenbrock.py":           # the stiff loop inlines the step kernels
        assert {"cpu/stiff.py", "cpu/rosenbrock_adjoint.py",
                "cpu/stiff_ensemble_adjoint.py"} <= changed
        assert "cpu/erk.py" not in changed and "cpu/sde.py" not in changed
    if edited == "cpu/stencil.py":
        assert {"cpu/krylov.py", "cpu/multigrid.py", "cpu/rhs_grid.py",
                "cpu/erk_large.py"} <= changed and "cpu/sde.py" not in changed
    if edited in ("cpu/complexpow.py", "cpu/__init__.py"):   # installed for every kernel
        assert changed == set(before)


CHILD = r"""
import json, os, pathlib, sys
import numpy as np
import jitsolve.kernels.cpu as cpu
edited = sys.argv[1]
if edited != "none":             # the stamps of a copy of the kernels with one file edited
    real = pathlib.Path(cpu.__file__).resolve().parent.parent
    copy = pathlib.Path(sys.argv[2])
    with open(copy / edited, "a") as fh:
        fh.write("\n# an edit\n")
    stamps = cpu.kernel_stamps(os.path.normpath(str(copy)))
    cpu._STAMP_STATE.update(
        root=os.path.normpath(str(real)), package=os.path.normpath(str(real.parent)),
        stamps={os.path.normpath(str(real / pathlib.Path(f).relative_to(copy))): d
                for f, d in stamps.items()})
from jitsolve.kernels.cpu import blas
x = np.arange(1000.0)
v = blas.sumsq(x)
print(json.dumps(dict(v=v, hits=sum(blas.sumsq.stats.cache_hits.values()),
                      misses=sum(blas.sumsq.stats.cache_misses.values()))))
"""


def test_a_kernel_reloads_unless_a_file_it_depends_on_changed(tmp_path):
    """``blas.sumsq`` compiled once, then in fresh processes: loaded with no edit and
    with ``sde.py`` edited; compiled again with ``blas.py`` edited (its own file) and with
    ``complexpow.py`` edited (installed for every kernel)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = {}
    for edited in ("none", "none", "cpu/sde.py", "cpu/blas.py", "cpu/complexpow.py"):
        copy = tmp_path / f"copy_{len(out)}"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
        r = subprocess.run([sys.executable, str(script), edited, str(copy)],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        out[len(out)] = (edited, json.loads(r.stdout.strip().splitlines()[-1]))
    assert all(o["v"] == sum(k * k for k in range(1000)) for _, o in out.values())
    seen = [(e, o["hits"], o["misses"]) for e, o in out.values()]
    assert seen == [("none", 0, 1), ("none", 1, 0), ("cpu/sde.py", 1, 0),
                    ("cpu/blas.py", 0, 1), ("cpu/complexpow.py", 0, 1)]
