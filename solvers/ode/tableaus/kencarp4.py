"""Kennedy-Carpenter ARK4(3)6L[2]SA ("KenCarp4"): additive IMEX Runge-Kutta pair.

References
----------
* C. A. Kennedy and M. H. Carpenter, "Additive Runge-Kutta schemes for
  convection-diffusion-reaction equations", Appl. Numer. Math. 44 (2003)
  139-181, method ARK4(3)6L[2]SA (Tables for the ERK and ESDIRK parts, the
  embedded weights and the dense-output coefficients b*_ij).

Where the numbers were taken from: diffrax ``diffrax/_solver/kencarp4.py``
(exact rationals of the paper: explicit/implicit tableaus, b, bhat and the
3rd-order dense-output coefficients of ``_KenCarp4Interpolation``); the same
values appear in OrdinaryDiffEq.jl's ``kencarp_kvaerno_tableaus.jl``
(``KenCarp4Tableau``).

Method
------
For u' = fE(t, u) + fI(t, u) (fE non-stiff/explicit, fI stiff/implicit), with
6 stages, explicit first stage, diagonal GAMMA = 1/4 on stages 2..6::

    U_i = u0 + h sum_{j<i} AE[i, j] fE(t0 + C[j] h, U_j)
             + h sum_{j<=i} AI[i, j] fI(t0 + C[j] h, U_j)
    u1  = u0 + h sum_i B[i] (fE_i + fI_i)                  (order 4)
    err = h sum_i BERR[i] (fE_i + fI_i),  BERR = B - Bhat  (Bhat order 3)

Both parts share C and B (and Bhat).  The implicit part is stiffly accurate
(AI[5] == B) and L-stable.  AE is (6, 6) strictly lower, AI is (6, 6) lower
with AI[i, i] = GAMMA for i >= 1 and AI[0, 0] = 0.

Dense output (order 3, shared by both parts, passes through u1)::

    u(t0 + theta h) = u0 + h sum_i b_i(theta) (fE_i + fI_i),
    b_i(theta) = sum_j BTHETA[i, j] theta^(j+1),  BTHETA shape (6, 3).
"""

import numpy as np

NAME = "KenCarp4"
ORDER = 4
EMBEDDED_ORDER = 3
STAGES = 6
GAMMA = 1 / 4

C = np.array([0.0, 1 / 2, 83 / 250, 31 / 50, 17 / 20, 1.0], dtype=np.float64)

B = np.array(
    [82889 / 524892, 0.0, 15625 / 83664, 69875 / 102672, -2260 / 8211, 1 / 4],
    dtype=np.float64,
)
BHAT = np.array(
    [
        4586570599 / 29645900160,
        0.0,
        178811875 / 945068544,
        814220225 / 1159782912,
        -3700637 / 11593932,
        61727 / 225920,
    ],
    dtype=np.float64,
)
BERR = B - BHAT

AE = np.zeros((6, 6), dtype=np.float64)
AE[1, :1] = [1 / 2]
AE[2, :2] = [13861 / 62500, 6889 / 62500]
AE[3, :3] = [
    -116923316275 / 2393684061468,
    -2731218467317 / 15368042101831,
    9408046702089 / 11113171139209,
]
AE[4, :4] = [
    -451086348788 / 2902428689909,
    -2682348792572 / 7519795681897,
    12662868775082 / 11960479115383,
    3355817975965 / 11060851509271,
]
AE[5, :5] = [
    647845179188 / 3216320057751,
    73281519250 / 8382639484533,
    552539513391 / 3454668386233,
    3354512671639 / 8306763924573,
    4040 / 17871,
]

AI = np.zeros((6, 6), dtype=np.float64)
AI[1, :2] = [1 / 4, 1 / 4]
AI[2, :3] = [8611 / 62500, -1743 / 31250, 1 / 4]
AI[3, :4] = [5012029 / 34652500, -654441 / 2922500, 174375 / 388108, 1 / 4]
AI[4, :5] = [
    15267082809 / 155376265600,
    -71443401 / 120774400,
    730878875 / 902184768,
    2285395 / 8070912,
    1 / 4,
]
AI[5, :6] = B

INTERP_ORDER = 3
# columns: coefficients of theta, theta^2, theta^3
BTHETA = np.array(
    [
        [6943876665148 / 7220017795957, -54480133 / 30881146, 6818779379841 / 7100303317025],
        [0.0, 0.0, 0.0],
        [7640104374378 / 9702883013639, -11436875 / 14766696, 2173542590792 / 12501825683035],
        [-20649996744609 / 7521556579894, 174696575 / 18121608, -31592104683404 / 5083833661969],
        [8854892464581 / 2390941311638, -12120380 / 966161, 61146701046299 / 7138195549469],
        [-11397109935349 / 6675773540249, 3843 / 706, -17219254887155 / 4939391667607],
    ],
    dtype=np.float64,
)
