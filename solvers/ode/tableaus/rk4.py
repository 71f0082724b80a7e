"""Classical fourth-order Runge-Kutta method ("RK4").

Butcher tableau::

    0   |
    1/2 | 1/2
    1/2 | 0    1/2
    1   | 0    0    1
    ----+-------------------
        | 1/6  1/3  1/3  1/6

Source: W. Kutta, "Beitrag zur naeherungsweisen Integration totaler
Differentialgleichungen", Z. Math. Phys. 46 (1901) 435-453; table as in
Hairer, Norsett & Wanner, "Solving ODEs I", 2nd ed. (1993), Table II.1.2.

No embedded error estimator (BERR = 0, EMBEDDED_ORDER = None).

Dense output: the classical third-order continuous extension of RK4 (the
cubic dense output without extra stages; cf. Hairer-Norsett-Wanner I,
Sec. II.6 "Dense Output")::

    b1(theta) = theta - 3 theta^2 / 2 + 2 theta^3 / 3
    b2(theta) = b3(theta) = theta^2 - 2 theta^3 / 3
    b4(theta) = -theta^2 / 2 + 2 theta^3 / 3

so u(t0 + theta h) = u0 + h sum_i b_i(theta) k_i, which equals u_new at
theta = 1 (INTERP_ORDER = 3).
"""

import numpy as np

NAME = "RK4"
ORDER = 4
EMBEDDED_ORDER = None
STAGES = 4
FSAL = False

C = np.array([0.0, 1 / 2, 1 / 2, 1.0], dtype=np.float64)
A = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],
        [1 / 2, 0.0, 0.0, 0.0],
        [0.0, 1 / 2, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ],
    dtype=np.float64,
)
B = np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6], dtype=np.float64)
BERR = np.zeros(4, dtype=np.float64)

INTERP_ORDER = 3
# columns: coefficients of theta, theta^2, theta^3
BTHETA = np.array(
    [
        [1.0, -3 / 2, 2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, -1 / 2, 2 / 3],
    ],
    dtype=np.float64,
)
