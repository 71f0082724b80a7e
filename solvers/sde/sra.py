"""SRA1: Rößler's order-1.5 stochastic Runge-Kutta method for additive noise
(g depends on t only; strong 1.5, weak 2), any noise kind, with an embedded error
estimate for adaptive stepping.  On multiplicative noise it would converge to the
Stratonovich solution, so ``jitsolve.sde`` refuses a ``g`` that changes with ``u``.

Coefficients: A. Rößler, SIAM J. Numer. Anal. 48 (2010) 922-952, Table 6.1 (SRA1); as
tabulated in StochasticDiffEq.jl (``constructSRA1`` in src/tableaus.jl).  Error
estimate: Rackauckas & Nie, DCDS-B 22 (2017): E1 = h sum_i f(H0_i), E2 the I_(1,0)
term, delta |E1| + |E2| with delta = 1/6.

Scheme: H0_i = u + h sum_j A0[i,j] f_j + sum_j B0[i,j] G_j I_(1,0)/h,
f_i = f(H0_i, t + c0_i h), G_i = g(H0_i, t + c1_i h),
u_{n+1} = u + h sum alpha_i f_i + sum (beta1_i dW + beta2_i I_(1,0)/h) G_i.
"""
import numpy as np

from .sri import pack as _pack

from ...kernels.cpu import sde as K

METHOD = K.SRA
NAME = "SRA1"
STRONG_ORDER = 1.5
WEAK_ORDER = 2.0
NOISE = ("diagonal", "scalar", "general")
INTERPRETATION = ("ito", "stratonovich")   # identical for additive noise
ADAPTIVE = True
ERROR_TERMS = 2
DELTA = 1.0 / 6.0

c0 = [0.0, 3 / 4]
c1 = [1.0, 0.0]
A0 = [[0, 0],
      [3 / 4, 0]]
B0 = [[0, 0],
      [3 / 2, 0]]
alpha = [1 / 3, 2 / 3]
beta1 = [1.0, 0.0]
beta2 = [-1.0, 1.0]

# packed in the SRI layout: the kernel reads beta2 of SRA from the "beta2" column and
# ignores A1, B1, beta3, beta4
TABLEAU = _pack(c0=c0, c1=c1, A0=A0, A1=np.zeros((2, 2)), B0=B0, B1=np.zeros((2, 2)),
                alpha=alpha, beta1=beta1, beta2=beta2, beta3=[0.0, 0.0], beta4=[0.0, 0.0])
