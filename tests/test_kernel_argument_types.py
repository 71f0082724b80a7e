"""Arrays handed to the compiled loops are writable and C-contiguous.

Numba types a read-only array apart from a writable one: a loss whose weights came as a
read-only view (``np.ascontiguousarray(np.broadcast_to(w, shape))`` returns the view
itself when ``w`` has the full shape already, or when it has one element) compiled every
ensemble-gradient kernel a second time (10-20 s each), and a scalar tolerance on a
one-state SDE the path loop (146 s of a cold test run's compiling went to such twins).
The arrays are copies now; each case here produced a read-only one before."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.sensitivity import ensemble_loss_arrays
from jitsolve.solvers.tolerance import tolerance_array


def writable_c(a):
    return a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float64


@pytest.mark.parametrize("x, n", [(1e-3, 1), (1e-3, 4), (np.array([1e-3]), 1),
                                  (np.array([1e-3, 2e-3]), 2)])
def test_sde_tolerances(x, n):
    a = tolerance_array(x, n)
    assert writable_c(a) and a.shape == (n,)
    assert np.all(a == np.broadcast_to(x, (n,)))


def test_loss_weights_of_the_full_shape_or_one_element():
    t = np.array([0.5, 1.0])
    full = js.L2Loss(t, np.ones((2, 3)), weights=np.full((2, 3), 2.0))
    one = js.L2Loss(np.array([1.0]), np.ones((1, 1)), weights=np.array([[2.0]]))
    bcast = js.L2Loss(t, np.ones((2, 3)), weights=np.array([1.0, 2.0, 3.0]))
    for loss in (full, one, bcast):
        assert writable_c(loss.weights)
    np.testing.assert_array_equal(bcast.weights, [[1, 2, 3], [1, 2, 3]])
    m = js.MomentLoss(t, mean=np.ones((2, 3)), var=np.ones((2, 3)),
                      mean_weights=np.full((2, 3), 2.0), var_weights=np.full((2, 3), 0.5))
    for name in ("mean_weights", "var_weights"):
        w = getattr(m, name)
        assert writable_c(w) and np.all(w == (2.0 if name == "mean_weights" else 0.5))


def test_ensemble_loss_arrays():
    from jitsolve.rhs import problem_rhs

    def f(du, u, p, t):
        du[0] = -p[0] * u[0]
        du[1] = -u[1]

    prob = js.ODEProblem(f, np.array([1.0, 2.0]), (0.0, 1.0), np.array([0.5]))
    ep = js.EnsembleProblem(prob)
    t = np.array([0.5, 1.0])
    loss = js.L2Loss(t, np.ones((3, 2, 2)), weights=np.full((3, 2, 2), 2.0))
    d, w, u0s, ps = ensemble_loss_arrays(ep, loss, problem_rhs(prob), 3, 2)
    for a in (d, w, u0s, ps):
        assert writable_c(a)
    assert w.shape == (3, 2, 2) and np.all(w == 2.0)
