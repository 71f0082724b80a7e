"""Shampine-Reichelt Rosenbrock (W-)method of order 2 with a 3rd-order error estimate.

References
----------
* L. F. Shampine and M. W. Reichelt, "The MATLAB ODE Suite", SIAM J. Sci.
  Comput. 18 (1997) 1-22 (method of ``ode23s``).

Where the formulas/numbers were taken from: SciML OrdinaryDiffEq.jl,
``lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl``
(``Rosenbrock23Tableau``: c32 = 6 + sqrt(2), d = 1/(2 + sqrt(2))) and the
``Rosenbrock23`` ``perform_step!`` in ``rosenbrock_perform_step.jl``; dense
output from OrdinaryDiffEq's ``rosenbrock_interpolants.jl`` (Shampine's
ode23s interpolant).

Step formulas (identity mass matrix)
------------------------------------
With step h from (t0, u0), J = df/du(t0, u0), T = df/dt(t0, u0),
gamma = h * D and W = I - gamma * J (one LU per step)::

    f0 = f(t0, u0)
    k1 = W^{-1} (f0 + gamma * T)
    f1 = f(t0 + h/2, u0 + (h/2) * k1)
    k2 = W^{-1} (f1 - k1) + k1
    u1 = u0 + h * k2                                  (2nd-order solution)

    # error estimate (also gives the FSAL value f2 = f(t0 + h, u1)):
    f2 = f(t0 + h, u1)
    k3 = W^{-1} (f2 - E32 * (k2 - f1) - 2 * (k1 - f0) + gamma * T)
    err = (h / 6) * (k1 - 2 * k2 + k3)                (estimate of the local
                                                       error of u1, O(h^3))

Note on the time-derivative term in k3: Shampine-Reichelt's ode23s uses
h*d*T (= gamma*T, as written above).  OrdinaryDiffEq's ``Rosenbrock23``
``perform_step!`` (checked in rosenbrock_perform_step.jl) writes ``dt * dT``
there instead; for non-autonomous problems that makes ``err`` only O(h^2)
(checked numerically on u' = -2 t u^2 from t0 = 0.3: with gamma*T the
estimate matches the true local error of u1 to ~1% and scales as h^3, with
h*T it scales as h^2 and overestimates ~170x at h = 0.0125; the test suite
checks the gamma*T form).  For autonomous problems (T = 0) both agree.
With a mass matrix M: W = M - gamma*J, k2 = W^{-1}(f1 - M k1) + k1 and
k3 = W^{-1}(f2 - M (E32 k2 + 2 k1) + E32 f1 + 2 f0 + gamma T).

Dense output (order 2, passes through u1)::

    u(t0 + theta h) = u0 + h * (b1(theta) k1 + b2(theta) k2),
    b1(theta) = theta (1 - theta) / (1 - 2 D),
    b2(theta) = theta (theta - 2 D) / (1 - 2 D),

i.e. b_i(theta) = sum_j BTHETA[i, j] theta^(j+1) over the 2 "stages" k1, k2.
The method is L-stable: R(z) -> 0 as z -> -infinity.
"""

import numpy as np

NAME = "Rosenbrock23"
ORDER = 2
EMBEDDED_ORDER = 3  # order of the companion formula behind ``err``
STAGES = 2  # linear solves for the solution (a third one for the error estimate)

D = 1.0 / (2.0 + np.sqrt(2.0))  # = 1 - 1/sqrt(2)
E32 = 6.0 + np.sqrt(2.0)
GAMMA = D

INTERP_ORDER = 2
BTHETA = np.array(
    [
        [1.0 / (1.0 - 2.0 * D), -1.0 / (1.0 - 2.0 * D)],
        [-2.0 * D / (1.0 - 2.0 * D), 1.0 / (1.0 - 2.0 * D)],
    ],
    dtype=np.float64,
)
