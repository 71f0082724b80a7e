"""Euler-Maruyama (Itô): u_{n+1} = u_n + f h + G dW.  Strong order 1/2, weak order 1;
any noise kind.  Kloeden & Platen, *Numerical Solution of SDEs* (1992), sec. 9.1."""
from ...kernels.cpu import sde as K

METHOD = K.EM
NAME = "EM"
STRONG_ORDER = 0.5
WEAK_ORDER = 1.0
NOISE = ("diagonal", "scalar", "general")
INTERPRETATION = ("ito",)
ADAPTIVE = False
TABLEAU = None
