"""pytest-benchmark suite of the kernels: stencils (apply, transpose, coefficient VJP) and BLAS-1.

Run:  python -m pytest perf/bench_kernels.py --benchmark-columns=min,median,rounds
Each benchmark stores its achieved GB/s and its ratio to the STREAM triad measured in the
same session (``extra_info``; shown with ``--benchmark-json``).  Sizes default to the
issue's (2-D 4096^2, 3-D 256^3); JITSOLVE_BENCH_SMALL=1 shrinks them for a smoke run.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from roofline import Bandwidth  # noqa: E402

import jitsolve as js  # noqa: E402
from jitsolve.kernels.cpu import blas  # noqa: E402

SMALL = os.environ.get("JITSOLVE_BENCH_SMALL") == "1"
SHAPES = [(256, 256), (32, 32, 32)] if SMALL else [(4096, 4096), (256, 256, 256)]


@pytest.fixture(scope="session")
def triad():
    bw = Bandwidth(gib=0.25 if SMALL else 1.0, repeat=5)
    bw.measure()
    return bw.triad


def _record(benchmark, nbytes, triad):
    t = benchmark.stats.stats.min
    benchmark.extra_info["GB/s"] = nbytes / t / 1e9
    benchmark.extra_info["triad GB/s"] = triad
    benchmark.extra_info["ratio to triad"] = nbytes / t / 1e9 / triad


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def fields(request):
    shape = request.param
    rng = np.random.default_rng(0)
    g = js.Grid(shape, bc=js.Dirichlet(0.0))
    return dict(g=g, u=rng.standard_normal(shape), lam=rng.standard_normal(shape),
                out=np.empty(shape), gout=np.empty((len(shape),) + shape),
                kappa=0.5 + rng.random(shape), vel=rng.uniform(-1, 1, (len(shape),) + shape))


@pytest.mark.parametrize("case", ["laplacian", "diffusion", "diffusion_vjp", "advection",
                                  "advection_T", "advection_vjp"])
def test_stencil(benchmark, fields, case, triad):
    f = fields
    g, u, lam, out = f["g"], f["u"], f["lam"], f["out"]
    d, n8 = g.ndim, 8 * g.size
    if case == "laplacian":
        op = js.Laplacian(g)
        fn, nbytes = (lambda: op.apply(u, out)), 2 * n8
    elif case.startswith("diffusion"):
        op = js.Diffusion(g, f["kappa"])
        fn, nbytes = ((lambda: op.param_vjp(u, lam, out)), 4 * n8) if case.endswith("vjp") \
            else ((lambda: op.apply(u, out)), 3 * n8)
    else:
        op = js.Advection(g, f["vel"])
        if case == "advection":
            fn, nbytes = (lambda: op.apply(u, out)), (2 + d) * n8
        elif case == "advection_T":
            opT = op.T
            fn, nbytes = (lambda: opT.apply(u, out)), (2 + d) * n8
        else:
            fn, nbytes = (lambda: op.param_vjp(u, lam, f["gout"])), (2 + 2 * d) * n8
    fn()
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    _record(benchmark, nbytes, triad)


N_BLAS = 2**20 if SMALL else 2**24


@pytest.mark.parametrize("case", ["dot", "nrm2", "axpy", "cg_update"])
def test_blas(benchmark, case, triad):
    rng = np.random.default_rng(1)
    x, y, p, r = (rng.standard_normal(N_BLAS) for _ in range(4))
    n8 = 8 * N_BLAS
    fn, nbytes = {
        "dot": (lambda: blas.dot(x, y), 2 * n8),
        "nrm2": (lambda: blas.nrm2(x), n8),
        "axpy": (lambda: blas.axpy(1e-9, x, y), 3 * n8),
        "cg_update": (lambda: blas.cg_update(1e-9, p, r, x, y), 6 * n8),
    }[case]
    fn()
    benchmark.pedantic(fn, rounds=9, iterations=1, warmup_rounds=1)
    _record(benchmark, nbytes, triad)
