"""The CUDA test layout: CUDA tests run under Numba's simulator on machines without a GPU.

The CUDA backend itself arrives in its own issue; this checks that the marker and fixture
run a CUDA kernel (simulated here) against its NumPy reference, so its tests can be added
as they are written.  Kernels are module-level functions using the global ``cuda``
(the simulator substitutes its own module for that global).
"""
import os

import numpy as np
import pytest
from numba import cuda


@cuda.jit
def _axpy(a, x, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] += a * x[i]


@pytest.mark.cuda
def test_cuda_fixture_runs_a_kernel(cuda):   # noqa: F811  (the fixture checks the device)
    if os.environ.get("JITSOLVE_TEST_GPU") != "1":
        assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    x = np.arange(100.0)
    y = np.ones(100)
    _axpy[4, 32](2.0, x, y)
    np.testing.assert_array_equal(y, 1.0 + 2.0 * np.arange(100.0))
