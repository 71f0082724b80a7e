"""Lotka-Volterra gradient with the complex step against the user's own ``vjp``.

    python perf/lotka_user_vjp.py [--repeat 300]

``js.gradient(..., js.Tsit5(), L2Loss(100 times), wrt="p", rtol=atol=1e-7)`` of the
Lotka-Volterra problem of perf/bench_ode.py on [0, 10] (the issue's case) and on
[0, 200] (20x the steps: the per-step cost), once with ``f`` alone (the reverse sweep's
VJPs by complex step: 6 complex evaluations of ``f`` per stage) and once with
``ODEFunction(lotka, vjp=lotka_vjp)`` (one call per stage).  Best of ``--repeat``
interleaved calls in one process.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jitsolve as js  # noqa: E402
from bench_ode import lotka, lotka_vjp  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=300)
    a = ap.parse_args(argv)
    p = np.array([1.5, 1.0, 3.0, 1.0])
    print(f"best of {a.repeat} interleaved calls; 1-minute load {os.getloadavg()[0]:.2f}")
    print("| horizon | steps | complex step (us) | user vjp (us) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for T in (10.0, 200.0):
        t = np.linspace(0, T, 100)
        probs = {name: js.ODEProblem(f, np.array([1.0, 1.0]), (0.0, T), p)
                 for name, f in (("cs", lotka), ("vjp", js.ODEFunction(lotka, vjp=lotka_vjp)))}
        loss = js.L2Loss(t, js.solve(probs["cs"], js.Tsit5(), saveat=t, rtol=1e-10).u * 1.01)
        g = {k: js.gradient(pr, js.Tsit5(), loss, wrt="p", rtol=1e-7, atol=1e-7)[1]["p"]
             for k, pr in probs.items()}
        rel = np.abs(g["vjp"] - g["cs"]).max() / np.abs(g["cs"]).max()
        assert rel < 1e-12, rel
        steps = js.solve(probs["cs"], js.Tsit5(), rtol=1e-7, atol=1e-7).stats.naccept
        best = {k: np.inf for k in probs}
        for _ in range(a.repeat):
            for k, pr in probs.items():
                t0 = time.perf_counter()
                js.gradient(pr, js.Tsit5(), loss, wrt="p", rtol=1e-7, atol=1e-7)
                best[k] = min(best[k], time.perf_counter() - t0)
        print(f"| [0, {T:g}] | {steps} | {best['cs'] * 1e6:.0f} | {best['vjp'] * 1e6:.0f} | "
              f"{best['cs'] / best['vjp']:.2f} |")


if __name__ == "__main__":
    main()
