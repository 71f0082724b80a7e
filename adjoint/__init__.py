"""Gradients of solver outputs: discrete and continuous adjoints, checkpointing, VJP sources.
Filled in by the adjoint issue; imports only ``jitsolve.solvers`` and ``jitsolve.kernels``."""
