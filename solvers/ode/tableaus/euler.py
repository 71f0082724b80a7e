"""Forward (explicit) Euler method, order 1.

Butcher tableau::

    0 |
    --+--
      | 1

Source: L. Euler (1768); see Hairer, Norsett & Wanner, "Solving Ordinary
Differential Equations I", 2nd ed., Springer 1993, Sec. II.1.  No embedded
error estimator (BERR = 0, EMBEDDED_ORDER = None).  Dense output is linear
interpolation, u(t0 + theta*h) = u0 + h*theta*k1 (INTERP_ORDER = 1).
"""

import numpy as np

NAME = "Euler"
ORDER = 1
EMBEDDED_ORDER = None
STAGES = 1
FSAL = False

C = np.array([0.0], dtype=np.float64)
A = np.array([[0.0]], dtype=np.float64)
B = np.array([1.0], dtype=np.float64)
BERR = np.zeros(1, dtype=np.float64)

# b_1(theta) = theta
INTERP_ORDER = 1
BTHETA = np.array([[1.0]], dtype=np.float64)
