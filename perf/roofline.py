"""Roofline measurement: this machine's memory bandwidth and each stencil kernel's share of it.

Measures, in one run, STREAM-style copy and triad with Numba on all cores (arrays of
``--gib`` GiB in total, far beyond the last-level cache), then every stencil kernel
(apply, transpose, coefficient VJP of Laplacian, Diffusion and Advection) on a 2-D
4096^2 and a 3-D 256^3 grid.  A kernel's bandwidth counts only the bytes that must
move: each input field read once and each output written once.  Write-allocate traffic
is not counted, which caps the ratio to the triad near 0.89 for a stencil (triad moves
4 arrays for 3 counted, a stencil 3 for 2).

Every figure is the best of ``--repeat`` runs, and the triad is re-measured between the
kernels; the ratio uses the best triad of the whole run, so noise from other processes
can only lower a ratio, never raise it.  The ratio to the best copy is printed beside it:
a copy has a stencil apply's traffic (one stream read, one written), so it is the
ceiling that the memory system itself sets for the apply on the machine at hand.

Run:  python perf/roofline.py [--gib 1.5] [--repeat 7] [--json out.json] [--quick]
"""
import argparse
import json
import os
import sys
import time

import numpy as np


# the measuring code lives in the installed package (jitsolve.bench), shared with
# ``jitsolve bench`` and ``js.profile``
from jitsolve.bench import Bandwidth, best_time  # noqa: E402,F401


def stencil_cases(quick=False):
    """(name, grid shape, setup) for every kernel; setup returns (callable, bytes moved)."""
    import jitsolve as js

    sizes = [("2D 4096^2", (4096, 4096)), ("3D 256^3", (256, 256, 256))]
    if quick:
        sizes = [("2D 1024^2", (1024, 1024)), ("3D 64^3", (64, 64, 64))]
    rng = np.random.default_rng(0)
    for label, shape in sizes:
        g = js.Grid(shape, bc=js.Dirichlet(0.0))
        n = g.size
        d = g.ndim
        u = rng.standard_normal(shape)
        lam = rng.standard_normal(shape)
        out = np.empty(shape)
        gout = np.empty((d,) + shape)
        kappa = 0.5 + rng.random(shape)
        vel = rng.uniform(-1, 1, (d,) + shape)
        L = js.Laplacian(g)
        D = js.Diffusion(g, kappa)
        A = js.Advection(g, vel, "upwind")
        f8 = 8 * n
        yield label, "Laplacian.apply", (lambda: L.apply(u, out)), 2 * f8
        yield label, "Diffusion.apply", (lambda: D.apply(u, out)), 3 * f8
        yield label, "Diffusion.param_vjp", (lambda: D.param_vjp(u, lam, out)), 4 * f8
        yield label, "Advection.apply", (lambda: A.apply(u, out)), (2 + d) * f8
        yield label, "Advection.T.apply", (lambda: A.T.apply(u, out)), (2 + d) * f8
        yield label, "Advection.param_vjp", (lambda: A.param_vjp(u, lam, gout)), (2 + 2 * d) * f8
        del u, lam, out, gout, kappa, vel, L, D, A


def run(gib=1.5, repeat=7, quick=False):
    import numba
    bw = Bandwidth(gib=0.25 if quick else gib, repeat=repeat)
    bw.measure()
    rows = []
    for label, name, fn, nbytes in stencil_cases(quick):
        t = best_time(fn, repeat)
        rows.append(dict(grid=label, kernel=name, seconds=t, gbs=nbytes / t / 1e9, bytes=nbytes))
        bw.measure()
    for r in rows:
        r["ratio_to_triad"] = r["gbs"] / bw.triad
        r["ratio_to_copy"] = r["gbs"] / bw.copy
    return dict(threads=numba.get_num_threads(), triad_gbs=bw.triad, copy_gbs=bw.copy,
                triad_samples=bw.triads, array_gib=3 * bw.a.nbytes / 2**30, rows=rows)


def format_table(res):
    lines = [f"threads: {res['threads']}   arrays: {res['array_gib']:.2f} GiB   "
             f"triad: {res['triad_gbs']:.1f} GB/s   copy: {res['copy_gbs']:.1f} GB/s   "
             f"(triad samples: {', '.join(f'{x:.1f}' for x in res['triad_samples'])})",
             "",
             "| grid | kernel | time (ms) | GB/s | / triad | / copy |",
             "|---|---|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['grid']} | {r['kernel']} | {1e3 * r['seconds']:.2f} | "
                     f"{r['gbs']:.1f} | {r['ratio_to_triad']:.2f} | {r['ratio_to_copy']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.5, help="total size of the triad arrays")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not a measurement)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    res = run(args.gib, args.repeat, args.quick)
    print(format_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
