"""Euler-Heun (Stratonovich): predictor ubar = u + f h + G(u) dW, corrector
u + (f(u) + f(ubar)) h/2 + (G(u) + G(ubar)) dW/2.  Strong order 1/2 (1 for additive
or commutative noise), weak order 1; any noise kind.
Kloeden & Platen (1992), sec. 11.1 (Heun scheme for Stratonovich SDEs)."""
from ...kernels.cpu import sde as K

METHOD = K.EULERHEUN
NAME = "EulerHeun"
STRONG_ORDER = 0.5
WEAK_ORDER = 1.0
NOISE = ("diagonal", "scalar", "general")
INTERPRETATION = ("stratonovich",)
ADAPTIVE = False
TABLEAU = None
