"""The jitsolve command line: info, the demo end to end at a small size, argument errors."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from jitsolve.cli import main


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jitsolve", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "jitsolve" in out and "numba" in out and "cuda:" in out and "threads" in out


@pytest.mark.parametrize("args,needle", [
    (["demo", "--size", "-3"], "--size"),
    (["demo", "--noise", "abc"], "--noise"),
    (["demo", "nosuchdemo"], "invalid choice"),
    (["demo", "conductivity", "--steps", "5"], "--steps"),
    (["demo", "heat-inverse", "--steps", "2"], "steps"),
    (["demo", "lotka-volterra", "--steps", "5"], "--steps"),
    (["bench", "nosuchsuite"], "invalid choice"),
    (["bench", "stencil", "--plot"], "--plot"),
    (["profile", "no_such_script.py"], "no such file"),
    (["demo", "--backend", "cuda"], "--backend"),
    (["frobnicate"], "invalid choice"),
])
def test_argument_errors_are_one_line_exit_2(args, needle):
    r = _run(*args)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in r.stderr


def test_demo_end_to_end(tmp_path):
    r = _run("demo", "conductivity", "--size", "16", "--maxiter", "8", "--quiet", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "relative L2 error" in r.stdout
    with h5py.File(tmp_path / "result.h5", "r") as f:
        truth, rec = f["truth"][()], f["recovered"][()]
        hist = f["loss_history"][()]
        assert f.attrs["relative_error"] == pytest.approx(
            np.linalg.norm(rec - truth) / np.linalg.norm(truth))
    assert truth.shape == (16, 16) and hist[-1] < hist[0]
    try:
        import matplotlib  # noqa: F401
        assert os.path.getsize(tmp_path / "result.png") > 10_000
    except ImportError:
        assert not (tmp_path / "result.png").exists()


def test_heat_inverse_demo_end_to_end(tmp_path):
    r = _run("demo", "heat-inverse", "--size", "16", "--steps", "10", "--maxiter", "15", "--quiet",
             "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "gradient check: Taylor remainder order 2.0" in r.stdout
    with h5py.File(tmp_path / "result.h5", "r") as f:
        truth, rec = f["truth"][()], f["recovered"][()]
        hist = f["loss_history"][()]
    assert np.linalg.norm(rec - truth) / np.linalg.norm(truth) < 0.5
    assert hist[-1] < 1e-2 * hist[0]
