"""Dormand-Prince 5(4) pair ("DOPRI5", "DP5") with Shampine's free dense output.

References
----------
* J. R. Dormand and P. J. Prince, "A family of embedded Runge-Kutta formulae",
  J. Comput. Appl. Math. 6 (1980) 19-26 (the 7-stage FSAL pair: C, A, B, Bhat).
* L. F. Shampine, "Some practical Runge-Kutta formulas", Math. Comp. 46 (1986)
  135-150 (the free 4th-order continuous extension).
* E. Hairer, S. P. Norsett, G. Wanner, "Solving ODEs I", 2nd ed., Table II.5.2
  and the Fortran code ``dopri5`` (dense output ``contd5``).

Where the numbers were taken from: the tableau rationals as printed in the
references above and in diffrax ``diffrax/_solver/dopri5.py``; the dense-output
matrix is SciPy's ``RK45.P`` (``scipy/integrate/_ivp/rk.py``), which is
Shampine's interpolant in the expanded-monomial form used here.

Data layout
-----------
7 stages; stage 7 is evaluated at u_new (A[6] == B), so it is FSAL.
Bhat = B - BERR is the 4th-order embedded solution
(5179/57600, 0, 7571/16695, 393/640, -92097/339200, 187/2100, 1/40).
Dense output: u(t0 + theta h) = u0 + h sum_i b_i(theta) k_i with
b_i(theta) = sum_j BTHETA[i, j] theta^(j+1), i = 1..7 (uses the FSAL stage).
"""

import numpy as np

NAME = "DP5"
ORDER = 5
EMBEDDED_ORDER = 4
STAGES = 7
FSAL = True

C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0], dtype=np.float64)

A = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0, 0.0],
        [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0, 0.0],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0, 0.0],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0],
        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0],
    ],
    dtype=np.float64,
)

B = np.array(
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0],
    dtype=np.float64,
)

# B - Bhat, Bhat = (5179/57600, 0, 7571/16695, 393/640, -92097/339200, 187/2100, 1/40)
BERR = np.array(
    [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40],
    dtype=np.float64,
)

INTERP_ORDER = 4
# columns: coefficients of theta, theta^2, theta^3, theta^4 (SciPy RK45.P)
BTHETA = np.array(
    [
        [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
        [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
        [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
    ],
    dtype=np.float64,
)
