"""Every script in examples/ runs (small sizes), so the examples cannot rot."""
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
ARGS = {"conductivity_inverse.py": ["32", "0.01"]}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    env = dict(os.environ, JITSOLVE_EXAMPLES_SMALL="1", MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(path), *ARGS.get(path.name, [])], capture_output=True,
                       text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()
