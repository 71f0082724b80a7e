"""What a ``js.MomentLoss`` gradient costs against the ensemble's forward solve and an
``L2Loss`` gradient of the same ensemble (per-trajectory data), in one run.

    python perf/moment_loss.py [--paths 1000] [--repeat 7]

An Ornstein-Uhlenbeck ensemble (``dX = theta (mu - X) dt + sigma dW``, shared ``p``,
``t`` in [0, 2], 8 observation times) with EM (``dt = 2^-7``) and SRA1 (fixed ``dt =
2^-7``); a 2-state Lotka-Volterra ODE ensemble (Tsit5, rtol 1e-8, per-trajectory ``ps``).
Every case runs once per round, best of ``--repeat`` rounds.  The MomentLoss gradient is
one forward ensemble solve (the moments and seeds) plus the ensemble gradient of an
``L2Loss``, so the expected ratio to the ``L2Loss`` gradient is about
``1 + forward / L2 gradient``.
"""
import argparse
import os

import numpy as np

import jitsolve as js
from heat_nonlinear import interleaved_best   # perf/, the script's directory


def ou_f(du, u, p, t):
    du[0] = p[0] * (p[1] - u[0])


def ou_g(gu, u, p, t):
    gu[0] = p[2]


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def best_of(cases, repeat):
    """Every case once untimed (compile, caches), then :func:`interleaved_best`."""
    for fn in cases.values():
        fn()
    return interleaved_best(cases, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    import numba
    N = a.paths
    print(f"threads {numba.get_num_threads()}; {N} trajectories; 1-minute load "
          f"{os.getloadavg()[0]:.2f}")
    T = np.linspace(0.25, 2.0, 8)
    P = np.array([1.5, 1.0, 0.4])
    ou = js.EnsembleProblem(js.SDEProblem(ou_f, ou_g, np.array([0.0]), (0.0, 2.0), P))
    mean = (1.0 - np.exp(-1.5 * T))[:, None]
    var = (0.16 / 3.0 * (1 - np.exp(-3.0 * T)))[:, None]
    mom = js.MomentLoss(T, mean=1.05 * mean, var=0.95 * var)
    rng = np.random.default_rng(0)
    l2 = js.L2Loss(T, rng.random((N, T.size, 1)))
    rows = []
    for name, alg, kw in (("EM", js.EM(), dict(dt=2.0 ** -7)),
                          ("SRA1", js.SRA1(), dict(dt=2.0 ** -7, adaptive=False))):
        kw = dict(kw, trajectories=N, seed=1)
        b = best_of({
            "forward": lambda: js.solve(ou, alg, saveat=T, **kw),
            "l2": lambda: js.gradient(ou, alg, l2, wrt="p", **kw),
            "moment": lambda: js.gradient(ou, alg, mom, wrt="p", **kw),
        }, a.repeat)
        rows.append((f"OU ensemble, {name}", b))
    u0s = 1.0 + 0.2 * rng.random((N, 2))
    ps = np.array([1.5, 1.0, 3.0, 1.0]) * (1 + 0.05 * rng.standard_normal((N, 4)))
    lv = js.EnsembleProblem(js.ODEProblem(lotka, np.ones(2), (0.0, 2.0), np.ones(4)),
                            u0s=u0s, ps=ps)
    TL = np.array([0.5, 1.0, 1.5, 2.0])
    moml = js.MomentLoss(TL, mean=np.ones((4, 2)), var=np.full((4, 2), 0.05))
    l2l = js.L2Loss(TL, rng.random((N, TL.size, 2)))
    kw = dict(trajectories=N, rtol=1e-8, atol=1e-10)
    b = best_of({
        "forward": lambda: js.solve(lv, js.Tsit5(), saveat=TL, **kw),
        "l2": lambda: js.gradient(lv, js.Tsit5(), l2l, wrt="p", **kw),
        "moment": lambda: js.gradient(lv, js.Tsit5(), moml, wrt="p", **kw),
    }, a.repeat)
    rows.append(("Lotka-Volterra ensemble, Tsit5", b))
    print(f"\nbest of {a.repeat} interleaved rounds; load {os.getloadavg()[0]:.2f} after\n")
    print("| ensemble | forward solve (ms) | L2Loss gradient (ms) | MomentLoss gradient (ms) "
          "| MomentLoss / L2Loss | expected 1 + fwd/L2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, b in rows:
        print(f"| {name} | {b['forward'] * 1e3:.1f} | {b['l2'] * 1e3:.1f} | "
              f"{b['moment'] * 1e3:.1f} | {b['moment'] / b['l2']:.2f} | "
              f"{1 + b['forward'] / b['l2']:.2f} |")


if __name__ == "__main__":
    main()
