"""Algorithms written against the kernels: Krylov solvers and preconditioners, ODE and
SDE integrators, ensembles.  Filled in by the solver issues; imports only ``jitsolve.kernels``."""
