"""Gradient / forward time of 1,000-step SDE solves (the SDE discrete adjoint): EM,
SRA1 and SRIW1 (fixed steps; SRIW1 also adaptive, steps held fixed), EM with general
noise, EulerHeun (Stratonovich) and Milstein (with its Milstein term ``ggprime``).

Nonlinear 2-state SDE with diagonal multiplicative noise, 4 parameters, loss on 10
saved states; ``js.gradient`` (wrt p and u0) against ``js.solve`` at the same dt and
seed, both called from Python (best of repeats, after warm-up).
Run: ``python -m jitsolve.perf.bench_sde_adjoint`` or ``python perf/bench_sde_adjoint.py``.
"""
import time

import numpy as np

import jitsolve as js


def nl_f(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[1] * u[0] * u[1]


def nl_g(gu, u, p, t):
    gu[0] = p[3] * np.sin(u[0]) * u[1]
    gu[1] = p[3] * u[1] / (1.0 + u[0] * u[0])


def add_g(gu, u, p, t):
    gu[0] = p[3] * (1.0 + t)
    gu[1] = 0.5 * p[3]


def gen_g(G, u, p, t):
    """General (matrix) noise: 2 states, 3 Brownian motions."""
    G[0, 0] = p[3] * u[0]
    G[0, 1] = 0.1 * u[1]
    G[0, 2] = 0.05
    G[1, 0] = 0.2 * u[0] * u[1]
    G[1, 1] = p[3]
    G[1, 2] = 0.1 * u[1]


def nl_ggp(out, u, p, t):
    """Milstein term of nl_g: g_i dg_i/du_i."""
    out[0] = p[3] * np.sin(u[0]) * u[1] * (p[3] * np.cos(u[0]) * u[1])
    out[1] = p[3] * u[1] / (1.0 + u[0] * u[0]) * (p[3] / (1.0 + u[0] * u[0]))


def _best(fn, reps):
    """Fastest of ``reps`` calls (the machine is shared: the minimum is the stable figure)."""
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts))


def main(reps=21):
    prob = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0),
                         np.array([1.1, 0.6, 0.8, 0.3]))
    dt = 1e-3
    td = np.linspace(0.1, 1.0, 10)
    loss = js.L2Loss(td, np.full((10, 2), 0.8))
    fwd = lambda: js.solve(prob, js.EM(), dt=dt, seed=1)                    # noqa: E731
    fwd_saved = lambda: js.solve(prob, js.EM(), dt=dt, seed=1, saveat=td)   # noqa: E731
    rows = []
    for name, sa in [("all", js.DiscreteAdjoint()),
                     ("all, wrt u0 only", None),
                     ("16 checkpoints", js.DiscreteAdjoint(checkpoints=16))]:
        wrt = ("u0",) if sa is None else ("p", "u0")
        grad = lambda: js.gradient(prob, js.EM(), loss, wrt=wrt, sensealg=sa,  # noqa: E731
                                   dt=dt, seed=1)
        grad()
        rows.append((name, _best(grad, reps)))
    fwd()
    fwd_saved()
    tf = _best(fwd, reps)
    tfs = _best(fwd_saved, reps)
    print(f"forward solve (1,000 EM steps, every state saved): {tf * 1e3:.3f} ms")
    print(f"forward solve (saveat 10 times): {tfs * 1e3:.3f} ms")
    for name, tg in rows:
        print(f"gradient, checkpoints={name}: {tg * 1e3:.3f} ms = {tg / tf:.1f}x forward")
    # the other methods: forward, gradient (every state), gradient with 16 checkpoints
    aprob = js.SDEProblem(nl_f, add_g, prob.u0, (0.0, 1.0), prob.p)   # additive: p3 (1 + t)
    gprob = js.SDEProblem(nl_f, gen_g, prob.u0, (0.0, 1.0), prob.p, noise="general",
                          nbrownian=3)
    fixed = dict(dt=dt, seed=1, adaptive=False)
    for name, alg, pr, kw in [
            ("SRA1 fixed step", js.SRA1(), aprob, fixed),
            ("SRIW1 fixed step", js.SRIW1(), prob, fixed),
            ("SRIW1 adaptive (1e-3, steps held fixed)", js.SRIW1(), prob,
             dict(seed=1, rtol=1e-3, atol=1e-3)),
            ("EM general noise (m = 3)", js.EM(), gprob, dict(dt=dt, seed=1)),
            ("EulerHeun", js.EulerHeun(), js.remake(prob, interpretation="stratonovich"),
             dict(dt=dt, seed=1)),
            ("Milstein (ggprime)", js.Milstein(), js.remake(prob, ggprime=nl_ggp),
             dict(dt=dt, seed=1))]:
        mfwd = lambda: js.solve(pr, alg, saveat=td, **kw)                        # noqa: E731
        mgrad = lambda: js.gradient(pr, alg, loss, wrt=("p", "u0"), **kw)       # noqa: E731
        mck = lambda: js.gradient(pr, alg, loss, wrt=("p", "u0"),               # noqa: E731
                                  sensealg=js.DiscreteAdjoint(checkpoints=16), **kw)
        mfwd()
        mgrad()
        mck()
        tmf, tmg, tmc = _best(mfwd, reps), _best(mgrad, reps), _best(mck, reps)
        print(f"{name}: forward (saveat) {tmf * 1e3:.3f} ms, gradient {tmg * 1e3:.3f} ms = "
              f"{tmg / tmf:.1f}x forward; 16 checkpoints {tmc * 1e3:.3f} ms = "
              f"{tmc / tmf:.1f}x")

if __name__ == "__main__":
    main()
