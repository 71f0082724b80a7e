"""Test configuration.

CUDA kernels are tested everywhere under Numba's CUDA simulator: unless
``JITSOLVE_TEST_GPU=1`` asks for the real device, ``NUMBA_ENABLE_CUDASIM=1`` is set here,
before anything imports Numba.  Tests of CUDA kernels carry ``@pytest.mark.cuda`` and use
the ``cuda`` fixture.
"""
import os

if os.environ.get("JITSOLVE_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest


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
