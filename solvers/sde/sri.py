"""SRIW1: Rößler's order-1.5 stochastic Runge-Kutta method for Itô SDEs with diagonal
or scalar noise (strong 1.5, weak 2), with the embedded error estimate of Rackauckas &
Nie used for adaptive stepping with rejection.

Coefficients: A. Rößler, "Runge-Kutta methods for the strong approximation of solutions
of stochastic differential equations", SIAM J. Numer. Anal. 48 (2010) 922-952, Table
5.2 (SRI1W1); as tabulated in StochasticDiffEq.jl (``constructSRIW1`` in
src/tableaus.jl).  C. Rackauckas, Q. Nie, "Adaptive methods for stochastic differential
equations via natural embeddings and rejection sampling with memory", Discrete Contin.
Dyn. Syst. Ser. B 22 (2017) 2731-2761 (error terms E1 = h (f(H0_1) + f(H0_2)), E2 the
I_(1,0) and I_(1,1,1) terms; estimate delta |E1| + |E2|, delta = 1/6).

Row i of a matrix is stage i: H_i = u + sum_{j<i} A[i, j] ...
"""
import numpy as np

from ...kernels.cpu import sde as K

METHOD = K.SRI
NAME = "SRIW1"
STRONG_ORDER = 1.5
WEAK_ORDER = 2.0
NOISE = ("diagonal", "scalar")
INTERPRETATION = ("ito",)
ADAPTIVE = True
ERROR_TERMS = 2
DELTA = 1.0 / 6.0

c0 = [0.0, 3 / 4, 0.0, 0.0]
c1 = [0.0, 1 / 4, 1.0, 1 / 4]
A0 = [[0, 0, 0, 0],
      [3 / 4, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0]]
A1 = [[0, 0, 0, 0],
      [1 / 4, 0, 0, 0],
      [1, 0, 0, 0],
      [0, 0, 1 / 4, 0]]
B0 = [[0, 0, 0, 0],
      [3 / 2, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0]]
B1 = [[0, 0, 0, 0],
      [1 / 2, 0, 0, 0],
      [-1, 0, 0, 0],
      [-5, 3, 1 / 2, 0]]
alpha = [1 / 3, 2 / 3, 0.0, 0.0]
beta1 = [-1.0, 4 / 3, 2 / 3, 0.0]
beta2 = [-1.0, 4 / 3, -1 / 3, 0.0]
beta3 = [2.0, -4 / 3, -2 / 3, 0.0]
beta4 = [-2.0, 5 / 3, -2 / 3, 1.0]


def pack(c0=c0, c1=c1, A0=A0, A1=A1, B0=B0, B1=B1, alpha=alpha, beta1=beta1, beta2=beta2,
         beta3=beta3, beta4=beta4):
    """The kernel's tableau array (s, 7 + 4 s): c0 c1 alpha beta1..4 | A0 A1 B0 B1."""
    s = len(alpha)
    cols = [np.asarray(v, dtype=np.float64).reshape(s, 1)
            for v in (c0, c1, alpha, beta1, beta2, beta3, beta4)]
    mats = [np.asarray(M, dtype=np.float64).reshape(s, s) for M in (A0, A1, B0, B1)]
    return np.ascontiguousarray(np.hstack(cols + mats))


TABLEAU = pack()
