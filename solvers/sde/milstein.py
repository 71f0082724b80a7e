"""Milstein (Itô; Stratonovich with dW^2 in place of dW^2 - h) for diagonal and scalar
noise: u_i + f_i h + g_i dW_i + 1/2 (g_i' g_i)(dW_i^2 - h).  Strong order 1, weak order 1.
The derivative term is the problem's ``ggprime`` when given (its complex twin evaluated
at real arguments; the discrete adjoint differentiates it by complex step), else comes
from complex-step differentiation of g (g must compile for complex128 states), else
from the derivative-free Runge-Kutta form.
Kloeden & Platen (1992), sec. 10.3 and 11.1."""
from ...kernels.cpu import sde as K

METHOD = K.MILSTEIN
NAME = "Milstein"
STRONG_ORDER = 1.0
WEAK_ORDER = 1.0
NOISE = ("diagonal", "scalar")
INTERPRETATION = ("ito", "stratonovich")
ADAPTIVE = False
TABLEAU = None
#: complex-step increment (any tiny value: no subtractive cancellation)
EPS_CS = 1e-30
