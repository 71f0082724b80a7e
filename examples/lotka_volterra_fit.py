"""Recover the four Lotka-Volterra parameters from noisy observations, with their
standard errors, then the parameters and the unknown initial populations jointly.

    python examples/lotka_volterra_fit.py

Tsit5 forward solves; exact gradients from the compiled discrete adjoint; L-BFGS-B; the
Gauss-Newton covariance from forward sensitivities (``js.parameter_covariance``, as
``scipy.optimize.curve_fit``'s ``pcov``).
"""
import numpy as np

import jitsolve as js


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


p_true = np.array([1.5, 1.0, 3.0, 1.0])
prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), p_true)
t = np.linspace(0.0, 10.0, 101)
clean = js.solve(prob, js.Vern7(), saveat=t, rtol=1e-10, atol=1e-10).u
data = clean + 0.02 * np.random.default_rng(0).standard_normal(clean.shape)

loss = js.L2Loss(t, data)
js.check_gradient(prob, js.Tsit5(), loss, wrt="p", rtol=1e-8, atol=1e-8)
# over several periods the loss has local minima (phase slips; from this start a plain fit
# of all 101 points stops at p ~ (3.1, 2.0, 0.35, 0.19)), so the time window grows: a
# quarter of the data, then half, then all, each fit starting from the last estimate
p = np.array([1.0, 1.5, 2.0, 1.5])
for k in (26, 51, 101):
    window = js.L2Loss(t[:k], data[:k])
    res = js.fit(js.remake(prob, p=p, tspan=(0.0, t[k - 1])), js.Tsit5(), window, p,
                 bounds=(0.1, 10.0), rtol=1e-8, atol=1e-8, progress=False)
    p = res.p
print(res)
print("recovered", res.p, "true", p_true, "rel. error",
      np.linalg.norm(res.p - p_true) / np.linalg.norm(p_true))
assert np.linalg.norm(res.p - p_true) / np.linalg.norm(p_true) < 0.02

cov = js.parameter_covariance(js.remake(prob, p=res.p), js.Tsit5(), loss, rtol=1e-8, atol=1e-8)
print("standard errors", cov.std, "(noise 0.02; residual variance "
      f"{cov.residual_variance:.2e}, condition {cov.cond:.2g})")
z = np.abs(res.p - p_true) / cov.std
print("errors in standard errors", np.round(z, 2))
assert np.all(z < 5)                      # the truth lies within the stated uncertainty

# the initial populations unknown too: both fitted at once
guess = (1.05 * res.p, np.array([0.8, 1.3]))
joint = js.fit(js.remake(prob, u0=guess[1]), js.Tsit5(), loss, guess, wrt=("p", "u0"),
               bounds=(0.1, 10.0), rtol=1e-8, atol=1e-8, progress=False)
cj = js.parameter_covariance(js.remake(prob, p=joint.p[0], u0=joint.p[1]), js.Tsit5(), loss,
                             wrt=("p", "u0"), rtol=1e-8, atol=1e-8)
print("joint fit: p", np.round(joint.p[0], 4), "+-", np.round(cj.std[0], 4))
print("           u0", np.round(joint.p[1], 4), "+-", np.round(cj.std[1], 4), "true [1, 1]")
assert np.all(np.abs(joint.p[1] - 1.0) < 5 * cj.std[1])

# Gauss-Newton with the exact Jacobian of the residuals (forward sensitivities): the same
# estimate as L-BFGS-B in a fraction of the solves
lm = js.fit(js.remake(prob, p=p), js.Tsit5(), loss, 1.05 * res.p, method="least_squares",
            bounds=(0.1, 10.0), rtol=1e-8, atol=1e-8, progress=False)
print(f"least_squares: {lm.nfev} solves (L-BFGS-B's last window: {res.nfev}),", np.round(lm.p, 5))
assert np.allclose(lm.p, res.p, rtol=1e-4)
