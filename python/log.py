"""Logging: every message the library emits goes through the standard :mod:`logging`
module, under the ``"jitsolve"`` logger (children ``jitsolve.solve``, ``jitsolve.compile``,
``jitsolve.gradient``, ``jitsolve.fit``, ``jitsolve.io``).

The library never prints, except the progress lines a caller asks for
(``js.fit(..., progress=True)``, ``js.solve(..., progress=True)``,
``js.check_gradient(..., verbose=True)``, the CLI).  A
``logging.NullHandler`` is attached, so nothing appears unless the application configures
logging; to see what jitsolve does::

    import logging
    logging.basicConfig(level=logging.INFO)            # fit iterations, failed solves
    logging.getLogger("jitsolve").setLevel(logging.DEBUG)   # + dispatch and compile times

Levels: ``WARNING`` a solve that ended without success (its retcode; the solution is
still returned with everything computed so far), ``INFO`` optimiser iterations and files
written, ``DEBUG`` which implementation a ``solve``/``gradient`` call dispatched to, its
wall time, and the compile (or cache-load) time of each user function.
"""
import logging

__all__ = ["logger", "get_logger"]

logger = logging.getLogger("jitsolve")
logger.addHandler(logging.NullHandler())


def get_logger(name):
    """The child logger ``jitsolve.<name>``."""
    return logging.getLogger(f"jitsolve.{name}")


def caller_stacklevel():
    """The ``stacklevel`` for ``warnings.warn`` called in the calling function that
    names the first frame outside the jitsolve package: the user's line."""
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 2, sys._getframe(2)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    return level
