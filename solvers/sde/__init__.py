"""SDE methods: one file per method (tableaus as data), the Brownian tree and the
drivers that hand a prepared problem to the compiled loops in ``kernels.cpu.sde``.

Layering: this package imports only ``jitsolve.kernels``; the API in ``jitsolve.sde``
builds the problems' first-class user functions and calls :func:`driver.solve_path`,
:func:`driver.solve_ensemble` and :func:`driver.ensemble_moments`.
"""
from . import em, eulerheun, milstein, sri, sra, brownian, driver  # noqa: F401

METHODS = {"EM": em, "EulerHeun": eulerheun, "Milstein": milstein, "SRIW1": sri, "SRA1": sra}
