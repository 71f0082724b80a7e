"""Rodas5P: stiffly accurate, L-stable Rosenbrock-Wanner method of order 5(4).

References
----------
* G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and
  numerical benchmarks within the Julia Differential Equations package",
  BIT Numer. Math. 63 (2023), article 27, doi:10.1007/s10543-023-00967-x.
* Form of the method: E. Hairer and G. Wanner, "Solving ODEs II", 2nd ed.,
  Sec. IV.7 (the transformed variables of the Fortran code ``rodas``).

Where the numbers were taken from: SciML OrdinaryDiffEq.jl,
``lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl``
(``Rodas5PTableau``: A, C, gamma, c, d, H), identical to diffrax
``diffrax/_solver/rodas5p.py``.  The source gives these as 16-17 digit
decimals (not rationals); they were not re-derived from the paper here, but
tests/test_tableaus.py checks the full (nonlinear) Rosenbrock order
conditions to order 5 / 4 and the convergence order numerically.

Data layout (s = 8 stages)
--------------------------
GAMMA (scalar), A (8, 8) strictly lower (a_ij), Cmat (8, 8) strictly lower
(C_ij), C (8,) stage times c_i (= alpha_i), D (8,) time-derivative
coefficients (gamma_i), B (8,) / BHAT (8,) / BERR = B - BHAT, H (3, 8).

Step formulas (identity mass matrix)
------------------------------------
h the step, J = df/du(t0, u0), T = df/dt(t0, u0), W = I/(h*GAMMA) - J::

    for i = 0..7:
        U_i = u0 + sum_{j<i} A[i, j] * k_j
        W k_i = f(t0 + C[i]*h, U_i) + sum_{j<i} (Cmat[i, j] / h) * k_j + h * D[i] * T

    u1  = u0 + sum_i B[i] * k_i       = U_7 + k_7   (5th order)
    err = sum_i BERR[i] * k_i         = k_7         (u1 - embedded 4th order U_7)

(k_i here are h-scaled increments.)  Because rows 6 and 7 of A are row 5 plus
unit entries, U_6 = U_5 + k_5 and U_7 = U_6 + k_6, which is how OrdinaryDiffEq
codes the last stages (``u = u + k``).  With a mass matrix M: W = M/(h*GAMMA)
- J and the C-sum is multiplied by M.

Dense output (OrdinaryDiffEq ``rosenbrock_interpolants.jl``)::

    K_r = sum_i H[r, i] * k_i,  r = 0, 1, 2
    u(t0 + theta h) = (1 - theta) u0
                      + theta (u1 + (1 - theta) (K_0 + theta (K_1 + theta K_2)))

This interpolant is of order 4 (INTERP_ORDER; local dense error O(h^5),
checked numerically in the tests).
"""

import numpy as np

NAME = "Rodas5P"
ORDER = 5
EMBEDDED_ORDER = 4
STAGES = 8
INTERP_ORDER = 4

GAMMA = 0.21193756319429014

A = np.zeros((8, 8), dtype=np.float64)
A[1, :1] = [3.0]
A[2, :2] = [2.849394379747939, 0.45842242204463923]
A[3, :3] = [-6.954028509809101, 2.489845061869568, -10.358996098473584]
A[4, :4] = [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641]
A[5, :5] = [
    -7.502846399306121,
    2.561846144803919,
    -11.627539656261098,
    -0.18268767659942256,
    0.030198172008377946,
]
A[6, :6] = list(A[5, :5]) + [1.0]
A[7, :7] = list(A[5, :5]) + [1.0, 1.0]

Cmat = np.zeros((8, 8), dtype=np.float64)
Cmat[1, :1] = [-14.155112264123755]
Cmat[2, :2] = [-17.97296035885952, -2.859693295451294]
Cmat[3, :3] = [147.12150275711716, -1.41221402718213, 71.68940251302358]
Cmat[4, :4] = [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306]
Cmat[5, :5] = [
    24.854864614690072,
    -3.0009227002832186,
    47.4931110020768,
    5.5814197821558125,
    -0.6610691825249471,
]
Cmat[6, :6] = [
    30.91273214028599,
    -3.1208243349937974,
    77.79954646070892,
    34.28646028294783,
    -19.097331116725623,
    -28.087943162872662,
]
Cmat[7, :7] = [
    37.80277123390563,
    -3.2571969029072276,
    112.26918849496327,
    66.9347231244047,
    -40.06618937091002,
    -54.66780262877968,
    -9.48861652309627,
]

C = np.array(
    [
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ],
    dtype=np.float64,
)

D = np.array(
    [
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ],
    dtype=np.float64,
)

B = np.array(list(A[7, :7]) + [1.0], dtype=np.float64)
BHAT = np.array(list(A[7, :7]) + [0.0], dtype=np.float64)
BERR = B - BHAT

H = np.array(
    [
        [
            25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
            0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493,
        ],
        [
            -9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
            20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372,
        ],
        [
            11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
            -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722,
        ],
    ],
    dtype=np.float64,
)
