"""Stiff discrete adjoint figures: Robertson (rate constants as parameters) to t = 1e5,
rtol 1e-6, atol 1e-10, L2 loss on 10 log-spaced states; gradient wrt p and u0 against
the forward solve (same options, saving at the loss's times), best of ``--reps``.

``imex``: KenCarp4's IMEX form on a 1-D reaction-diffusion ``SplitODEProblem`` (Laplacian
on 64 cells implicit, Fisher-KPP/Allen-Cahn reaction with 2 parameters explicit, its
diagonal ``jac_sparsity`` declared), t in [0, 1], rtol 1e-6, atol 1e-8, 10 states.

``continuous``: the same Robertson problem with the continuous adjoints and forward
sensitivities solved by the stiff methods (jitsolve.adjoint.continuous_stiff): time per
gradient against the forward solve and the discrete adjoint, the first call's extra
time (compiling the adjoint system's cfuncs), and the error against a discrete adjoint
at rtol 1e-11 (per parameter, relative).

    python perf/bench_stiff_adjoint.py [--case robertson|imex|continuous|all] [--reps 7]
"""
import argparse
import time

import numpy as np

import jitsolve as js
from jitsolve.ode_stiff import ImplicitEuler, KenCarp4, Kvaerno5, Rodas5P, Rosenbrock23
from jitsolve.stiff_gradient import stiff_discrete_adjoint


def rober(du, u, p, t):
    du[0] = -p[0] * u[0] + p[2] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[2] * u[1] * u[2] - p[1] * u[1] * u[1]
    du[2] = p[1] * u[1] * u[1]


def best(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def fisher_ac(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i]) - p[1] * u[i] * u[i] * u[i]


def imex(reps):
    import scipy.sparse as sp
    n = 64
    g = js.Grid((n,), bc=js.Dirichlet(0.5))
    L = 0.2 * js.Laplacian(g)
    x = (np.arange(n) + 0.5) / n
    u0 = 0.5 + 0.4 * np.sin(2 * np.pi * x)
    p = np.array([2.0, 0.7])
    td = np.linspace(0.1, 1.0, 10)
    f = js.ODEFunction(fisher_ac, jac_sparsity=sp.eye(n))
    prob = js.SplitODEProblem(L, f, u0, (0.0, 1.0), p)
    kw = dict(rtol=1e-6, atol=1e-8)
    alg = KenCarp4()
    data = js.solve(prob, alg, saveat=td, rtol=1e-10, atol=1e-12).u * 1.01
    loss = js.L2Loss(td, data)
    print(f"KenCarp4 IMEX: 0.2 Laplacian (64 cells, Dirichlet) + Fisher/Allen-Cahn, t in [0, 1], "
          f"rtol 1e-6, atol 1e-8, 10 observations, best of {reps}")
    _row("KenCarp4 IMEX", prob, alg, loss, td, kw, reps)
    tf = best(lambda: js.solve(prob, alg, saveat=td, tstops=td, **kw), reps)
    # (ForwardSensitivity: 66 inputs, an augmented system above dense_max -- refused)
    for sa in (js.InterpolatingAdjoint(), js.QuadratureAdjoint()):
        tg = best(lambda: js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sa, **kw), reps)
        print(f"  {type(sa).__name__:21s} {tg * 1e3:7.2f} ms ({tg / tf:4.1f}x the forward; "
              f"jac_sparsity colours the adjoint system's J)")


def _row(name, prob, alg, loss, td, kw, reps):
    sol = js.solve(prob, alg, saveat=td, tstops=td, **kw)
    tf = best(lambda: js.solve(prob, alg, saveat=td, tstops=td, **kw), reps)
    tg = best(lambda: stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), None, dict(kw)), reps)
    tc = best(lambda: stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"),
                                             js.DiscreteAdjoint(checkpoints=16), dict(kw)), reps)
    print(f"  {name:13s} steps {sol.steps_t.size:5d}  forward {tf * 1e3:7.2f} ms"
          f"  gradient {tg * 1e3:7.2f} ms ({tg / tf:4.1f}x)  16 checkpoints "
          f"{tc * 1e3:7.2f} ms ({tc / tf:4.1f}x)")


def continuous(reps):
    T = 1e5
    prob = js.ODEProblem(rober, np.array([1.0, 0.0, 0.0]), (0.0, T), np.array([0.04, 3e7, 1e4]))
    td = np.logspace(-3, 5, 10)
    kw = dict(rtol=1e-6, atol=1e-10)
    data = js.solve(prob, Rodas5P(), saveat=td, rtol=1e-10, atol=1e-14).u * 1.01
    loss = js.L2Loss(td, data, weights=np.broadcast_to([1.0, 1e10, 1.0], data.shape).copy())
    _, ref = js.gradient(prob, Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-11, atol=1e-14)
    print(f"Robertson to t = {T:g}, rtol 1e-6, atol 1e-10, 10 observations, continuous "
          f"sensitivities by the stiff methods, best of {reps}")
    for alg in (Rodas5P(), Rosenbrock23(), KenCarp4(), Kvaerno5()):
        tf = best(lambda: js.solve(prob, alg, saveat=td, tstops=td, **kw), reps)
        td_ = best(lambda: js.gradient(prob, alg, loss, wrt=("p", "u0"), **kw), reps)
        _, gd = js.gradient(prob, alg, loss, wrt=("p", "u0"), **kw)
        row = (f"  {type(alg).__name__:13s} forward {tf * 1e3:6.2f} ms | discrete {td_ / tf:5.1f}x "
               f"(err {float(np.max(np.abs(gd['p'] / ref['p'] - 1.0))):.1e})")
        for label, sa in (("interp.", js.InterpolatingAdjoint()),
                          ("quadr.", js.QuadratureAdjoint()),
                          ("forward", js.ForwardSensitivity())):
            t = time.perf_counter()
            _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sa, **kw)
            first = time.perf_counter() - t
            tg = best(lambda: js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sa, **kw),
                      reps)
            err = float(np.max(np.abs(g["p"] / ref["p"] - 1.0)))
            row += (f" | {label} {tg / tf:5.1f}x "
                    f"(first {first:5.2f} s, err {err:.1e})")
        print(row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--case", choices=("robertson", "imex", "continuous", "all"), default="all")
    a = ap.parse_args()
    if a.case in ("imex", "all"):
        imex(a.reps)
    if a.case in ("continuous", "all"):
        continuous(a.reps)
    if a.case in ("imex", "continuous"):
        return
    T = 1e5
    u0 = np.array([1.0, 0.0, 0.0])
    p = np.array([0.04, 3e7, 1e4])
    td = np.logspace(-3, 5, 10)
    prob = js.ODEProblem(rober, u0, (0.0, T), p)
    kw = dict(rtol=1e-6, atol=1e-10)
    data = js.solve(prob, Rodas5P(autonomous=True), saveat=td, rtol=1e-10, atol=1e-14).u * 1.01
    loss = js.L2Loss(td, data, weights=np.broadcast_to([1.0, 1e10, 1.0], data.shape).copy())
    print(f"Robertson to t = {T:g}, rtol 1e-6, atol 1e-10, 10 observations, best of {a.reps}")
    for alg in (Rosenbrock23(autonomous=True), Rodas5P(autonomous=True), ImplicitEuler(),
                Kvaerno5()):
        sol = js.solve(prob, alg, saveat=td, tstops=td, **kw)
        tf = best(lambda: js.solve(prob, alg, saveat=td, tstops=td, **kw), a.reps)
        tg = best(lambda: stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), None, dict(kw)),
                  a.reps)
        tc = best(lambda: stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"),
                                                 js.DiscreteAdjoint(checkpoints=16), dict(kw)),
                  a.reps)
        print(f"  {type(alg).__name__:13s} steps {sol.steps_t.size:5d}  forward {tf * 1e3:7.2f} ms"
              f"  gradient {tg * 1e3:7.2f} ms ({tg / tf:4.1f}x)  16 checkpoints "
              f"{tc * 1e3:7.2f} ms ({tc / tf:4.1f}x)")


if __name__ == "__main__":
    main()
