"""The discrete adjoint of the stiff methods' Newton-Krylov path: gradient time over the
forward solve's, on a reaction-diffusion inverse problem above ``dense_max``.

``u' = D(kappa) u + r u (1 - u)`` on ``--n``^2 cells (Neumann, ``kappa = exp(U(-1, 1))``
scaled by ``--scale``), ``[0, --t1]``, observed at four times; the gradient of the L2
loss with respect to ``p = (r,)``, ``u0`` and ``kappa`` (one adjoint sweep for all
``2 n^2 + 1`` inputs) by KenCarp4 (IMEX: the reaction explicit) and Kvaerno5 at
``--rtol``.  Reported: the forward solve (``js.solve`` at the loss's times), the
gradient (its forward pass records the stages), their ratio, the transposed stage
solves' GMRES iterations against the forward's, the stages' memory, and the gradient
against central differences of the loss along one random direction of ``kappa`` (fixed
steps, Newton to 1e-10).
The same with ``js.DiscreteAdjoint(checkpoints=--checkpoints)`` (the steps re-solved from
snapshots), its largest difference from the store-all gradient, and the peak traced
memory of both (``tracemalloc``, one more call each).  Best of ``--repeat``, forward and
gradients interleaved.

Run:  python perf/nk_adjoint.py [--n 128] [--t1 0.02] [--rtol 1e-6] [--repeat 3]
      [--checkpoints 4]
"""
import argparse
import importlib
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
from numba import njit


@njit(cache=True)
def logistic(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--t1", type=float, default=0.02)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoints", type=int, default=4)
    a = ap.parse_args(argv)
    import jitsolve as js
    nkmod = importlib.import_module("jitsolve.adjoint.newton_krylov")
    esdirk = importlib.import_module("jitsolve.solvers.ode.esdirk")
    counts = {"forward": 0, "adjoint": 0}

    def counting(g, key):
        def run(*args, **kw):
            res = g(*args, **kw)
            counts[key] += res.iters
            return res
        return run
    esdirk.gmres = counting(esdirk.gmres, "forward")
    nkmod.gmres = counting(nkmod.gmres, "adjoint")

    g = js.Grid((a.n, a.n), bc=js.Neumann())
    x, y = g.mesh()
    rng = np.random.default_rng(0)
    u0 = 0.5 + 0.4 * np.sin(2 * np.pi * x) * np.cos(np.pi * y)
    kappa = np.exp(rng.uniform(-1.0, 1.0, g.shape))
    f = js.ODEFunction(logistic, jac_sparsity=sp.identity(g.size, format="csr"))
    prob = js.SplitODEProblem(a.scale * js.Diffusion(g, kappa), f, u0, (0.0, a.t1),
                              np.array([20.0]))
    tt = np.linspace(a.t1 / 4, a.t1, 4)
    kw = dict(rtol=a.rtol, atol=a.rtol * 1e-2)
    data = js.solve(prob, js.Kvaerno5(dense_max=10), saveat=tt, **kw).u + \
        0.01 * rng.standard_normal((tt.size,) + g.shape)
    loss = js.L2Loss(tt, data)
    wrt = ("p", "u0", "kappa")
    print(f"grid {a.n}^2 ({g.size} unknowns), t1 = {a.t1}, rtol = {a.rtol}, "
          f"wrt p, u0, kappa ({2 * g.size + 1} inputs)")
    C = a.checkpoints
    print(f"| method | forward (s) | gradient (s) | ratio | steps | GMRES fwd / adj "
          f"| stages (MiB) | peak traced (MiB) | {C} checkpoints (s) | ratio | peak (MiB) "
          f"| vs store-all | vs central differences |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("KenCarp4", "Kvaerno5"):
        alg = getattr(js, name)(dense_max=10)
        js.gradient(prob, alg, loss, wrt=wrt, **kw)        # compile
        ck = js.DiscreteAdjoint(checkpoints=C)
        tf, tg, tc = [], [], []
        for _ in range(a.repeat):
            counts.update(forward=0, adjoint=0)
            t0 = time.perf_counter()
            sol = js.solve(prob, alg, saveat=tt, **kw)
            tf.append(time.perf_counter() - t0)
            fwd_iters = counts["forward"]
            t0 = time.perf_counter()
            v, gr = js.gradient(prob, alg, loss, wrt=wrt, **kw)
            tg.append(time.perf_counter() - t0)
            adj_iters = counts["adjoint"]
            t0 = time.perf_counter()
            vc, gc = js.gradient(prob, alg, loss, wrt=wrt, sensealg=ck, **kw)
            tc.append(time.perf_counter() - t0)
        diff = max(float(np.abs(gc[k] - gr[k]).max() / np.abs(gr[k]).max()) for k in wrt)
        peaks = []
        for sa in (js.DiscreteAdjoint(), ck):
            tracemalloc.start()
            js.gradient(prob, alg, loss, wrt=wrt, sensealg=sa, **kw)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        steps = sol.stats.naccept
        s = {"KenCarp4": 6, "Kvaerno5": 7}[name]
        mib = steps * s * g.size * 8 / 2**20
        d = rng.standard_normal(g.shape)
        e = 1e-6

        # fixed steps (the loss's times on the grid), Newton to 1e-10: a smooth map
        fkw = dict(adaptive=False, dt=a.t1 / 40, rtol=1e-10, atol=1e-12)

        def J(ee):
            pr = js.SplitODEProblem(a.scale * js.Diffusion(g, kappa + ee * d), f, u0,
                                    (0.0, a.t1), np.array([20.0]))
            return loss.value(js.solve(pr, alg, saveat=tt, **fkw).u)
        fd = (J(e) - J(-e)) / (2 * e)
        gk = js.gradient(prob, alg, loss, wrt="kappa", **fkw)[1]
        rel = abs(np.sum(gk["kappa"] * d) - fd) / abs(fd)
        print(f"| {name} | {min(tf):.3f} | {min(tg):.3f} | {min(tg) / min(tf):.2f} | "
              f"{steps} | {fwd_iters} / {adj_iters} | {mib:.1f} | "
              f"{peaks[0]:.1f} | {min(tc):.3f} | {min(tc) / min(tf):.2f} | {peaks[1]:.1f} | "
              f"{diff:.1e} | {rel:.1e} |")


if __name__ == "__main__":
    main()
