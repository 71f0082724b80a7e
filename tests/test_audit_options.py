"""Audit of options outside ``solve`` (forty-second session): ``backend`` and
``progress`` checked for ``gradient`` (and so ``fit`` and the local sensitivities) as
``solve`` checks them -- a ``"cuda"`` gradient ran on the CPU without a word;
``check_gradient``'s steps (one step, or a zero step, "passed" a wrong gradient) and an
empty ``p``; ``HDF5Store``'s path."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import BackendUnavailableError, InvalidProblemError


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


PROB = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), np.array([2.0]))
LOSS = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))


@pytest.mark.parametrize("backend, error", [("cuda", BackendUnavailableError),
                                            ("mpi", BackendUnavailableError),
                                            ("not-a-backend", InvalidProblemError)])
@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=lambda a: type(a).__name__)
def test_gradient_checks_the_backend_as_solve_does(backend, error, alg):
    with pytest.raises(error, match="^backend: "):
        js.solve(PROB, alg, backend=backend)
    with pytest.raises(error, match="^backend: "):
        js.gradient(PROB, alg, LOSS, wrt="p", backend=backend)
    with pytest.raises(error, match="^backend: "):
        js.gradient(js.EnsembleProblem(PROB, ps=np.ones((2, 1))), alg, LOSS, wrt="p",
                    backend=backend)
    with pytest.raises(error, match="^backend: "):
        js.local_sensitivities(PROB, alg, np.array([1.0]), backend=backend)
    v, g = js.gradient(PROB, alg, LOSS, wrt="p", backend="cpu", rtol=1e-10, atol=1e-12)
    assert abs(g["p"][0] + np.exp(-4.0)) < 1e-7       # d/dp 0.5 exp(-2p) = -exp(-2p)


@pytest.mark.parametrize("progress", ["banana", 5, None])
def test_progress_must_be_a_bool(progress):
    for call in (lambda: js.solve(PROB, js.Tsit5(), progress=progress),
                 lambda: js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", progress=progress)):
        with pytest.raises(InvalidProblemError, match="^progress: expected True or False"):
            call()


def test_check_gradient_steps_and_an_empty_p():
    bad = js.Loss(lambda u: 0.5 * float(np.sum(u ** 2)), lambda u: 3.0 * u,
                  t_data=np.array([1.0]))                  # its gradient is 3x too large
    kw = dict(verbose=False, rtol=1e-10, atol=1e-12)
    assert not js.check_gradient(PROB, js.Tsit5(), bad, wrt="p", **kw)["passed"]
    for eps in ([1e-2], [1e-2, 0.0], [1e-2, -1e-3], 1e-3, [1e-2, np.nan]):
        with pytest.raises(InvalidProblemError, match="^eps: expected at least two step"):
            js.check_gradient(PROB, js.Tsit5(), bad, wrt="p", eps=eps, **kw)
    good = js.check_gradient(PROB, js.Tsit5(), LOSS, wrt="p", eps=[1e-2, 5e-3, 2.5e-3], **kw)
    assert good["passed"] and good["eps"].tolist() == [1e-2, 5e-3, 2.5e-3]
    no_p = js.ODEProblem(lambda du, u, p, t: None, np.array([1.0]), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match="^wrt: the problem has no p"):
        js.check_gradient(no_p, js.Tsit5(), LOSS, wrt="p", **kw)


def test_hdf5_store_path_must_be_a_path():
    with pytest.raises(InvalidProblemError, match="^path: expected a file path, got int"):
        js.HDF5Store(123)
