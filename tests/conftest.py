"""Test configuration.

CUDA kernels are tested everywhere under Numba's CUDA simulator: unless
``JITSOLVE_TEST_GPU=1`` asks for the real device, ``NUMBA_ENABLE_CUDASIM=1`` is set here,
before anything imports Numba.  Tests of CUDA kernels carry ``@pytest.mark.cuda`` and use
the ``cuda`` fixture.

Under pytest-xdist each worker launches its parallel kernels on ``cores // workers``
threads (``numba.set_num_threads``; Numba's pool keeps ``NUMBA_NUM_THREADS``, so the tests
that compare thread counts still reach every thread): the README's two workers on two
cores with two threads each oversubscribe the cores, and every parallel region on a small
grid then waits on a descheduled thread (the OpenMP layer spins at its barriers): the
Newton-Krylov adjoint tests ran 5x slower than alone.  ``tests/test_threads.py`` runs the
parallel kernels on one thread and on two and asks for the same results.
"""
import os

if os.environ.get("JITSOLVE_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest


def _threads_per_worker():
    """Numba threads for this xdist worker: the cores shared out, at least one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(workers, 1))


if "PYTEST_XDIST_WORKER" in os.environ:
    import numba

    numba.set_num_threads(min(_threads_per_worker(), numba.config.NUMBA_NUM_THREADS))


@pytest.fixture
def cuda():
    """``numba.cuda`` (the simulator unless JITSOLVE_TEST_GPU=1)."""
    from numba import cuda as _cuda
    if os.environ.get("JITSOLVE_TEST_GPU") == "1" and not _cuda.is_available():
        pytest.fail("JITSOLVE_TEST_GPU=1 but no CUDA device is available")
    return _cuda


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
