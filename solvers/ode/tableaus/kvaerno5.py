"""Kvaerno's 5(4) ESDIRK method ("Kvaerno5"): 7 stages, explicit first stage,
stiffly accurate, L-stable, diagonal GAMMA = 0.26.

References
----------
* A. Kvaerno, "Singly diagonally implicit Runge-Kutta methods with an
  explicit first stage", BIT Numer. Math. 44 (2004) 489-502 (the 5(4) pair).

Where the numbers were taken from: diffrax ``diffrax/_solver/kvaerno5.py``
(17-significant-digit decimals, as in the paper; no rationals available),
which itself follows OrdinaryDiffEq.jl's ``Kvaerno5Tableau``.

Method
------
    U_i = u0 + h sum_{j<=i} A[i, j] f(t0 + C[j] h, U_j),  A[i, i] = GAMMA (i >= 1)
    u1  = u0 + h sum_i B[i] f_i  (= U_6, stiffly accurate; order 5)
    err = h sum_i BERR[i] f_i,  BERR = B - Bhat, Bhat = (A[5, :5], GAMMA, 0) (order 4;
          i.e. the embedded solution is U_5, also stiffly accurate)

No dense-output coefficients are given (use Hermite interpolation with f_0, f_6).
"""

import numpy as np

NAME = "Kvaerno5"
ORDER = 5
EMBEDDED_ORDER = 4
STAGES = 7
GAMMA = 0.26

A = np.zeros((7, 7), dtype=np.float64)
A[1, :2] = [GAMMA, GAMMA]
A[2, :3] = [0.13, 0.84033320996790809, GAMMA]
A[3, :4] = [0.22371961478320505, 0.47675532319799699, -0.06470895363112615, GAMMA]
A[4, :5] = [
    0.16648564323248321,
    0.10450018841591720,
    0.03631482272098715,
    -0.13090704451073998,
    GAMMA,
]
A[5, :6] = [
    0.13855640231268224,
    0.0,
    -0.04245337201752043,
    0.02446657898003141,
    0.61943039072480676,
    GAMMA,
]
A[6, :7] = [
    0.13659751177640291,
    0.0,
    -0.05496908796538376,
    -0.04118626728321046,
    0.62993304899016403,
    0.06962479448202728,
    GAMMA,
]

C = np.array(
    [0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0],
    dtype=np.float64,
)

B = A[6].copy()
BHAT = np.array(list(A[5, :6]) + [0.0], dtype=np.float64)
BERR = B - BHAT
