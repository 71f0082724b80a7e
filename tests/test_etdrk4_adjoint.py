"""Discrete adjoint of ETDRK4: gradients against fourth-order central differences of the
whole solve for every representation of L, the dot-product test of the reverse sweep,
checkpointing variants bit for bit, VJP sources, the Taylor self-check, refusals."""
import numpy as np
import pytest
import scipy.sparse as sp

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from ode_models import linear_mix


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * (u[i] - u[i] ** 3) + p[1] * np.sin(3.0 * t)


def reaction_vjp(out_u, out_p, lam, u, p, t):
    s = 0.0
    for i in range(u.size):
        out_u[i] = p[0] * (1.0 - 3.0 * u[i] * u[i]) * lam[i]
        s += (u[i] - u[i] ** 3) * lam[i]
    out_p[0] = s
    acc = 0.0
    for i in range(u.size):
        acc += np.sin(3.0 * t) * lam[i]
    out_p[1] = acc


def _cases():
    g = js.Grid((6, 5), bc=[js.Dirichlet(0.3), js.Neumann()])
    X, Y = g.mesh()
    vel = (np.full(g.shape, 1.0), np.full(g.shape, 0.5))
    return g, X, Y, {
        "diagonal": -np.linspace(0.0, 30.0, g.size),
        "separable": 0.05 * js.Laplacian(g),
        "symmetric-dense": 0.05 * js.Diffusion(g, 1.0 + X * Y),
        "nonsymmetric-dense": 0.02 * js.Laplacian(g) - js.Advection(g, vel),
    }


def _problem(name):
    g, X, Y, cases = _cases()
    L = cases[name]
    u0 = np.sin(np.pi * X) * np.cos(np.pi * Y)
    if isinstance(L, np.ndarray):
        u0 = u0.ravel()
    return js.SplitODEProblem(L, reaction, u0, (0.0, 0.6), p=np.array([1.5, 0.3]))


T_DATA = np.array([0.0, 0.2, 0.45, 0.6])


def _loss(prob):
    data = np.random.default_rng(0).standard_normal((T_DATA.size,) + prob.u0.shape)
    return js.L2Loss(T_DATA, data)


def _J(prob, loss, **ch):
    s = js.solve(js.remake(prob, **ch), js.ETDRK4(), dt=0.1, saveat=T_DATA, tstops=T_DATA)
    return loss.value(s.u)


def _cd4(fun, h):
    """Fourth-order central difference of a scalar function of one variable at 0."""
    return (8 * (fun(h) - fun(-h)) - (fun(2 * h) - fun(-2 * h))) / (12 * h)


@pytest.mark.parametrize("name", ["diagonal", "separable", "symmetric-dense",
                                  "nonsymmetric-dense"])
def test_gradient_against_central_differences(name):
    prob = _problem(name)
    loss = _loss(prob)
    val, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.1)
    assert val == pytest.approx(_J(prob, loss), rel=1e-14)
    for k in range(2):
        e = np.eye(2)[k]
        fd = _cd4(lambda h: _J(prob, loss, p=prob.p + h * e), 1e-4)
        assert g["p"][k] == pytest.approx(fd, rel=1e-8, abs=1e-9 * abs(val))
    d = np.random.default_rng(1).standard_normal(prob.u0.shape)
    # (the cubic makes the u0 direction the more curved one: a smaller step)
    fd = _cd4(lambda h: _J(prob, loss, u0=prob.u0 + h * d), 1e-5)
    assert np.sum(g["u0"] * d) == pytest.approx(fd, rel=1e-8, abs=1e-9 * abs(val))


@pytest.mark.parametrize("name", ["diagonal", "separable", "symmetric-dense",
                                  "nonsymmetric-dense"])
def test_dot_product_of_the_reverse_sweep(name):
    """With a linear N the solve is a linear map S: <S d, lam> = <d, S^T lam> where S^T lam
    is the gradient of <lam, u(T)> wrt u0 (the reverse sweep alone)."""
    _, _, _, cases = _cases()
    L = cases[name]
    n = 30
    P = 0.3 * np.random.default_rng(2).standard_normal((n, n))
    d = np.random.default_rng(3).standard_normal(n)
    lam = np.random.default_rng(4).standard_normal(n)
    shape = (n,) if isinstance(L, np.ndarray) else (6, 5)
    prob = js.SplitODEProblem(L, linear_mix, d.reshape(shape), (0.0, 0.5), p=P.ravel())
    if not isinstance(L, np.ndarray) and np.any(L.boundary_term()):
        prob = js.remake(prob, L=sp.csr_matrix(L.to_csr()))   # a linear map: no boundary data
    Sd = js.solve(prob, js.ETDRK4(), dt=0.1).u[-1].ravel()
    loss = js.Loss(lambda u: float(np.dot(lam, u[-1].ravel())),
                   lambda u: np.broadcast_to(lam.reshape(shape), u.shape) * (np.arange(u.shape[0]) == u.shape[0] - 1).reshape((-1,) + (1,) * len(shape)),
                   t_data=np.array([0.5]))
    _, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("u0",), dt=0.1)
    lhs, rhs = float(np.dot(Sd, lam)), float(np.dot(d, g["u0"].ravel()))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(Sd) * np.linalg.norm(lam) * 10


def test_checkpointing_is_bit_for_bit(tmp_path):
    prob = _problem("separable")
    loss = _loss(prob)
    ref = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.05)
    for sa in (js.DiscreteAdjoint(checkpoints=2), js.DiscreteAdjoint(checkpoints=5),
               js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(str(tmp_path / "c.h5")))):
        val, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.05, sensealg=sa)
        assert val == ref[0]
        np.testing.assert_array_equal(g["p"], ref[1]["p"])
        np.testing.assert_array_equal(g["u0"], ref[1]["u0"])


def test_vjp_sources_agree():
    """The user's vjp, the coloured complex step (diagonal jac_sparsity) and the dense
    complex step give the same gradient; a wrong user vjp changes it (it is used)."""
    prob = _problem("separable")
    loss = _loss(prob)
    n = prob.u0.size
    ref = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.1)[1]
    for fun in (js.ODEFunction(reaction, vjp=reaction_vjp),
                js.ODEFunction(reaction, jac_sparsity=sp.identity(n))):
        g = js.gradient(js.remake(prob, f=fun), js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.1)[1]
        np.testing.assert_allclose(g["p"], ref["p"], rtol=1e-12)
        np.testing.assert_allclose(g["u0"], ref["u0"], rtol=1e-11, atol=1e-12)

    def wrong_vjp(out_u, out_p, lam, u, p, t):
        s = 0.0
        for i in range(u.size):
            out_u[i] = p[0] * (1.0 - 3.0 * u[i] * u[i]) * lam[i]
            s += (u[i] - u[i] ** 3) * lam[i]
        out_p[0] = 2.0 * s          # twice the right value
        acc = 0.0
        for i in range(u.size):
            acc += np.sin(3.0 * t) * lam[i]
        out_p[1] = acc
    g = js.gradient(js.remake(prob, f=js.ODEFunction(reaction, vjp=wrong_vjp)), js.ETDRK4(),
                    loss, wrt=("p",), dt=0.1)[1]
    assert abs(g["p"][0] - ref["p"][0]) > 1e-3 * abs(ref["p"][0])


def test_check_gradient_and_fit():
    prob = _problem("diagonal")
    loss = _loss(prob)
    rep = js.check_gradient(prob, js.ETDRK4(), loss, wrt="p", verbose=False, dt=0.1)
    assert rep["passed"] and rep["order"] > 1.8
    # recover p from data made with p = (1.2, -0.4)
    truth = js.remake(prob, p=np.array([1.2, -0.4]))
    data = js.solve(truth, js.ETDRK4(), dt=0.1, saveat=T_DATA, tstops=T_DATA).u
    res = js.fit(prob, js.ETDRK4(), js.L2Loss(T_DATA, data), np.array([1.0, 0.0]), progress=False,
                 dt=0.1, maxiter=60)
    np.testing.assert_allclose(res.p, [1.2, -0.4], rtol=1e-5, atol=1e-6)


def test_refusals_name_the_argument():
    prob = _problem("separable")
    loss = _loss(prob)
    with pytest.raises(UnsupportedAlgorithmError, match="sensealg: ETDRK4"):
        js.gradient(prob, js.ETDRK4(), loss, sensealg=js.InterpolatingAdjoint(), dt=0.1)
    with pytest.raises(UnsupportedAlgorithmError, match="sensealg: ETDRK4"):
        js.gradient(prob, js.ETDRK4(), loss, sensealg=js.ForwardSensitivity(), dt=0.1)
    with pytest.raises(InvalidProblemError, match="wrt: ETDRK4"):
        js.gradient(prob, js.ETDRK4(), loss, wrt=("kappa",), dt=0.1)
    with pytest.raises(InvalidProblemError, match="saveat"):
        js.gradient(prob, js.ETDRK4(), loss, dt=0.1, saveat=[0.6])


def test_dense_complex_step_on_a_grid():
    """A 32 x 32 grid (1,024 unknowns) without jac_sparsity: the dense complex step (n
    evaluations of f per product) gives the coloured one's gradient."""
    g = js.Grid((32, 32), bc=js.Neumann())
    X, Y = g.mesh()
    prob = js.SplitODEProblem(0.01 * js.Laplacian(g), reaction,
                              np.cos(np.pi * X) * np.cos(2 * np.pi * Y), (0.0, 0.3),
                              p=np.array([1.0, 0.2]))
    loss = js.L2Loss(np.array([0.3]), np.zeros((1,) + g.shape))
    dense = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.1)[1]
    diag = js.gradient(js.remake(prob, f=js.ODEFunction(reaction, jac_sparsity=sp.identity(g.size))),
                       js.ETDRK4(), loss, wrt=("p", "u0"), dt=0.1)[1]
    np.testing.assert_allclose(dense["p"], diag["p"], rtol=1e-12)
    np.testing.assert_allclose(dense["u0"], diag["u0"], rtol=1e-11, atol=1e-14)
