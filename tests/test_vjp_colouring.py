"""Column colouring of Jacobian sparsity patterns (Curtis-Powell-Reid), the complex-step
VJP sources' grouping: valid for any pattern, one colour per column for a dense one
(which used to go through the O(n^3) greedy loop: minutes at n = 1024)."""
import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from jitsolve.adjoint.vjp import _colouring, colour_columns


def _valid(pattern, colour):
    R = sp.csr_matrix(pattern)
    for r in range(R.shape[0]):
        cols = R.indices[R.indptr[r]:R.indptr[r + 1]]
        if len(set(colour[cols].tolist())) != len(cols):
            return False
    return True


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), density=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 16))
def test_colouring_is_valid(n, density, seed):
    P = sp.random(n, n, density=density, random_state=seed, format="csr") + sp.identity(n)
    colour, ncol = colour_columns(P)
    assert _valid(P, colour)
    assert ncol == colour.max() + 1 and ncol <= n
    assert ncol >= np.diff(sp.csr_matrix(P).indptr).max()     # a row's columns all differ


def test_dense_and_diagonal_patterns():
    colour, ncol = colour_columns(np.ones((1024, 1024)))
    assert ncol == 1024 and np.array_equal(colour, np.arange(1024))
    colour, ncol = colour_columns(sp.identity(500))
    assert ncol == 1 and not colour.any()
    colour, ncol, ptr, idx = _colouring(1024, None)        # no jac_sparsity: dense
    assert ncol == 1024 and ptr[-1] == 1024 * 1024 and np.array_equal(idx[:1024], np.arange(1024))
    # a banded (tridiagonal) pattern: three colours
    T = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(50, 50))
    colour, ncol = colour_columns(T)
    assert ncol == 3 and _valid(T, colour)
