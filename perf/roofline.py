"""Roofline measurement: this machine's memory bandwidth and each stencil kernel's share of it.

Measures, in one run, STREAM-style copy and triad with Numba on all of Numba's threads
(arrays of ``--gib`` GiB in total, raised if needed so that each array is at least 4x
the last-level cache, STREAM's rule), then every stencil kernel (apply, transpose,
coefficient VJP of Laplacian, Diffusion and Advection) on a 2-D 4096^2 and a 3-D 256^3
grid.  GB/s is 10^9 bytes per second.  A kernel's bandwidth counts only the bytes that
must move: each input field read once and each output written once (``--json``
writes them per kernel, ``bytes``).  The triad counts ``3 x 8`` bytes per element and
the copy ``2 x 8``, as STREAM does: the write-allocate read that a plain store causes is
counted by none of them.  So a kernel with plain stores tops out near 0.89 of the
triad (the triad moves 4 arrays for 3 counted, the kernel 3 for 2) and near 1.0 of the
copy; the 2-D Laplacian apply, which writes with streaming stores (outputs of 64 MiB
and more, ``kernels/cpu/ntstore.py``), moves only the bytes counted, so its ceiling is
about 1.33 of the triad and 1.5 of the copy.

Every figure is the minimum time of ``--repeat`` warm runs (one untimed run first), and
the triad is re-measured between the kernels; the ratio uses the best triad of the
whole run, so noise from other processes can only lower a ratio, never raise it.  The
ratio to the best copy is printed beside it (the copy reads one stream and writes one,
as an apply with plain stores does).  The header names the last-level cache and each
array's size; a grid whose arrays are less than 4x that cache is marked ``(cache)``.

Run:  python perf/roofline.py [--gib 1.5] [--repeat 7] [--json out.json] [--quick]
"""
import argparse
import json
import sys

import numpy as np


# the measuring code lives in the installed package (jitsolve.bench), shared with
# ``jitsolve bench`` and ``js.profile``
from jitsolve.bench import Bandwidth, _jsonable, best_time, llc_bytes, stream_gib  # noqa: E402,F401


#: the grids of a run (label -> shape), and of a ``--quick`` one
GRIDS = {"2D 4096^2": (4096, 4096), "3D 256^3": (256, 256, 256)}
QUICK_GRIDS = {"2D 1024^2": (1024, 1024), "3D 64^3": (64, 64, 64)}


def stencil_cases(quick=False):
    """``(grid label, kernel name, call, bytes moved)`` for every kernel on every grid."""
    import jitsolve as js

    rng = np.random.default_rng(0)
    for label, shape in (QUICK_GRIDS if quick else GRIDS).items():
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
        # bytes: fields read once + outputs written once (float64, 8 bytes a cell each)
        yield label, "Laplacian.apply", (lambda: L.apply(u, out)), 2 * f8            # u, out
        yield label, "Diffusion.apply", (lambda: D.apply(u, out)), 3 * f8            # u, kappa, out
        yield label, "Diffusion.param_vjp", (lambda: D.param_vjp(u, lam, out)), 4 * f8   # u, lam, kappa, g
        yield label, "Advection.apply", (lambda: A.apply(u, out)), (2 + d) * f8      # u, v (d), out
        yield label, "Advection.T.apply", (lambda: A.T.apply(u, out)), (2 + d) * f8  # lam, v (d), out
        yield label, "Advection.param_vjp", (lambda: A.param_vjp(u, lam, gout)), (2 + 2 * d) * f8  # u, lam, v, g (d)
        u = lam = out = gout = kappa = vel = L = D = A = None   # free before the next grid


def run(gib=1.5, repeat=7, quick=False):
    import numba
    llc = llc_bytes()
    bw = Bandwidth(gib=0.25 if quick else stream_gib(gib, llc), repeat=repeat)
    bw.measure()
    rows = []
    for label, name, fn, nbytes in stencil_cases(quick):
        t = best_time(fn, repeat)
        field = 8 * int(np.prod(_shape_of(label)))
        rows.append(dict(grid=label, kernel=name, seconds=t, gbs=nbytes / t / 1e9, bytes=nbytes,
                         array_bytes=field, cache=bool(llc and field < 4 * llc)))
        bw.measure()
    for r in rows:
        r["ratio_to_triad"] = r["gbs"] / bw.triad
        r["ratio_to_copy"] = r["gbs"] / bw.copy
    return dict(threads=numba.get_num_threads(), triad_gbs=bw.triad, copy_gbs=bw.copy,
                triad_median_gbs=bw.triad_median, triad_samples=bw.triads,
                array_gib=3 * bw.a.nbytes / 2**30, llc_bytes=llc, repeat=repeat, rows=rows)


def _shape_of(label):
    """The shape of the grid labelled ``label`` (``"2D 4096^2"`` -> (4096, 4096))."""
    return {**GRIDS, **QUICK_GRIDS}[label]


def format_table(res):
    llc = res.get("llc_bytes")
    lines = [f"threads: {res['threads']}   arrays: {res['array_gib']:.2f} GiB   "
             f"triad: {res['triad_gbs']:.1f} GB/s   copy: {res['copy_gbs']:.1f} GB/s   "
             f"(triad samples: {', '.join(f'{x:.1f}' for x in res['triad_samples'])})",
             f"last-level cache: {f'{llc / 2**20:.0f} MiB' if llc else 'unknown'}; GB/s = 1e9 B/s; "
             f"triad 3 x 8 B/element, copy 2 x 8, kernels their fields once, write-allocate "
             f"not counted; times: min of {res.get('repeat', 'several')} warm runs",
             "",
             "| grid | kernel | time (ms) | GB/s | / triad | / copy |",
             "|---|---|---:|---:|---:|---:|"]
    for r in res["rows"]:
        grid = r['grid'] + (" (cache)" if r.get("cache") else "")
        lines.append(f"| {grid} | {r['kernel']} | {1e3 * r['seconds']:.2f} | "
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
            json.dump(_jsonable(res), f, indent=1, allow_nan=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
