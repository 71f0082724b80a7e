"""Stochastic logistic growth calibrated from ensemble statistics: a nonlinear SDE whose
moment equations do not close, fitted by matching a model ensemble's sample mean and
variance to those of observed paths (``js.MomentLoss``), with pathwise gradients
through every model path (the ensemble's discrete adjoint, one compiled kernel).

    dX = r X (1 - X / K) dt + sigma X dW,   X(0) = 0.1

The observed data are only the mean and the variance of 4,000 paths at 16 times
(simulated with the true parameters and seed 1); the model ensemble runs 1,000 paths on
other Brownian paths (seed 2, held fixed: common random numbers make the loss a smooth
function of the parameters).  The weights are the inverse sampling variances of the two
statistics.  What limits the recovery is the sampling error of both ensembles.

    python examples/sde_moment_matching.py
"""
import os
import time

import numpy as np

import jitsolve as js


def logistic(du, u, p, t):
    du[0] = p[0] * u[0] * (1.0 - u[0] / p[1])


def noise(gu, u, p, t):
    gu[0] = p[2] * u[0]


small = bool(os.environ.get("JITSOLVE_EXAMPLES_SMALL"))
N_OBS, N_MODEL = (1_000, 300) if small else (4_000, 1_000)
truth = np.array([1.5, 2.0, 0.3])                   # r, K, sigma
T = 4.0
dt = 2.0 ** -6
t_obs = dt * np.round(np.linspace(0.25, T, 16) / dt)  # on the step grid
prob = js.SDEProblem(logistic, noise, np.array([0.1]), (0.0, T), truth)

paths = js.solve(js.EnsembleProblem(prob), js.EM(), dt=dt, saveat=t_obs, trajectories=N_OBS,
                 seed=1).u                           # (N_OBS, 16, 1)
mean, var = paths.mean(axis=0), paths.var(axis=0, ddof=1)
loss = js.MomentLoss(t_obs, mean=mean, var=var,
                     mean_weights=N_OBS / var / t_obs.size,
                     var_weights=N_OBS / (2.0 * var ** 2) / t_obs.size)

p0 = np.array([0.8, 3.0, 0.6])
model = js.EnsembleProblem(js.remake(prob, p=p0))
kw = dict(dt=dt, trajectories=N_MODEL, seed=2)
check = js.check_gradient(model, js.EM(), loss, wrt="p", verbose=False, **kw)
print(f"gradient check (Taylor remainder): order {check['order']:.2f}, "
      f"{'passed' if check['passed'] else 'FAILED'}")
assert check["passed"]

t0 = time.perf_counter()
res = js.fit(model, js.EM(), loss, p0, wrt="p", bounds=[(0.05, 10.0), (0.2, 20.0), (0.01, 3.0)],
             progress=False, maxiter=100, **kw)
wall = time.perf_counter() - t0
err = np.abs(res.p / truth - 1.0)
print(f"{N_OBS} observed paths, {N_MODEL} model paths, {t_obs.size} times")
print("recovered (r, K, sigma):", np.round(res.p, 4), "truth:", truth)
print(f"relative errors {np.round(err, 3)}; {res.nit} L-BFGS-B iterations, {res.nfev} "
      f"gradients, {wall:.1f} s; loss {res.history[0]:.3g} -> {res.loss:.3g}")
assert res.success and err.max() < (0.15 if small else 0.08)
