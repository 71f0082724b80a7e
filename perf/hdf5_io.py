"""Time ``sol.to_hdf5`` and ``js.load`` of solution files, in the HDF5 1.10 object formats
with fixed-length strings that ``jitsolve.io`` writes (checksummed metadata), against
HDF5 1.8's formats with variable-length strings (what it wrote before the forty-seventh
session), in the same process: best of ``--repeat`` writes and loads, file sizes.

Run:  python perf/hdf5_io.py [--repeat 30]
"""
import argparse
import os
import tempfile
import time

import numpy as np

import jitsolve as js
import jitsolve.io as jio


def best(sol, path, repeat):
    w = r = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        sol.to_hdf5(path)
        w = min(w, time.perf_counter() - t)
        t = time.perf_counter()
        js.load(path)
        r = min(r, time.perf_counter() - t)
    return w * 1e3, r * 1e3, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = {
        "ODE 5 x 3": js.ODESolution(np.linspace(0, 1, 5), rng.random((5, 3)), alg="Tsit5"),
        "ODE 1001 x 100": js.ODESolution(np.linspace(0, 1, 1001), rng.random((1001, 100)),
                                         alg="Tsit5"),
    }
    formats = {"1.10, fixed strings": (jio._LIBVER, jio._fixed),
               "1.8, vlen strings (before)": ("earliest", lambda s: s)}
    print(f"{'solution':16s} {'format':28s} {'write ms':>9s} {'load ms':>8s} {'bytes':>8s}")
    with tempfile.TemporaryDirectory() as d:
        saved = jio._LIBVER, jio._fixed
        try:
            for name, sol in cases.items():
                for fmt, (libver, fixed) in formats.items():
                    jio._LIBVER, jio._fixed = libver, fixed
                    w, r, size = best(sol, os.path.join(d, "s.h5"), args.repeat)
                    print(f"{name:16s} {fmt:28s} {w:9.2f} {r:8.2f} {size:8d}")
        finally:
            jio._LIBVER, jio._fixed = saved


if __name__ == "__main__":
    main()
