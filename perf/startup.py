"""Start-up costs: ``import jitsolve``, and the first stencil apply in a fresh process with a
cold and with a warm Numba cache (median of several fresh processes each).

Run:  python perf/startup.py [--runs 5]
The first apply includes what jitsolve loads lazily on first use: ``import numba`` (which
``import jitsolve`` does not do; reported separately), Numba's one-time target
initialisation, and the kernel's cache load (warm) or compilation (cold).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import jitsolve as js
t1 = time.perf_counter()
import numpy as np
g = js.Grid((64, 64), bc=js.Dirichlet(0.0))
L = js.Laplacian(g)
u = np.ones(g.shape)
t2 = time.perf_counter()
L.apply(u)
t3 = time.perf_counter()
L.apply(u)
t4 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_apply_s=t3 - t2, second_apply_s=t4 - t3)))
"""

NUMBA_ONLY = r"""
import json, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
print(json.dumps(dict(import_numba_s=t1 - t0)))
"""


def _child(code, env):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    res = {}
    cold = []
    for _ in range(max(1, args.runs // 2)):
        with tempfile.TemporaryDirectory() as d:
            env["NUMBA_CACHE_DIR"] = d
            cold.append(_child(CHILD, env))
    with tempfile.TemporaryDirectory() as d:
        env["NUMBA_CACHE_DIR"] = d
        _child(CHILD, env)                       # fill the cache
        warm = [_child(CHILD, env) for _ in range(args.runs)]
    numba_only = [_child(NUMBA_ONLY, dict(os.environ)) for _ in range(args.runs)]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    res = dict(import_jitsolve_s=med(warm, "import_s"),
               first_apply_warm_cache_s=med(warm, "first_apply_s"),
               first_apply_cold_cache_s=med(cold, "first_apply_s"),
               second_apply_s=med(warm, "second_apply_s"),
               import_numba_s=med(numba_only, "import_numba_s"))
    print("| measure | median (s) |\n|---|---:|")
    for k, v in res.items():
        print(f"| {k} | {v:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
