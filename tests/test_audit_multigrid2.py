"""Audit of ``Multigrid(coarse="auto")`` on thin features: the second test of the automatic
choice (:func:`~jitsolve.solvers.linear.precond.multigrid.conductance_ratio`, the energy
comparison of the rediscretised coarse levels with ``R A P``) takes Galerkin levels for
channels and barriers one or two cells wide and for checkerboards of single cells and of
2 x 2 blocks, which the neighbour ratio of ``kappa`` on the second coarse level misses (the
forty-third session's table: 66 CG iterations against 9 for a channel of 1e4 one cell wide
at 64^2); smooth fields, noise, isolated cells and short bars keep the cheaper
rediscretised levels.  Iterations to rtol 1e-8 against both explicit choices, solutions
against SciPy's direct solve of ``to_csr()``."""
import numpy as np
import pytest
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.solvers.linear.precond import multigrid as MG


def _channel(shape, width, hi, kind="h"):
    """``kappa = hi`` on a straight channel through the middle: ``"h"`` along the last
    axis (rows ``n/2 .. n/2 + width - 1``), ``"v"`` along the first, ``"d"`` the staircase
    ``0 <= j - i < width`` (a face-connected path for ``width >= 2``; ``width = 1`` is the
    diagonal, connected through corners only); in 3-D a line along the first axis."""
    idx = np.indices(shape)
    n = shape[0]
    if len(shape) == 3:
        m = ((idx[1] >= n // 2) & (idx[1] < n // 2 + width)
             & (idx[2] >= n // 2) & (idx[2] < n // 2 + width))
    elif kind == "d":
        m = (idx[1] - idx[0] >= 0) & (idx[1] - idx[0] < width)
    else:
        x = idx[0] if kind == "h" else idx[1]
        m = (x >= n // 2) & (x < n // 2 + width)
    return np.where(m, hi, 1.0)


def _checker(shape, block, hi):
    idx = np.indices(shape)
    return np.where(sum(i // block for i in idx) % 2 == 1, hi, 1.0)


def _bc(name):
    return {"D": js.Dirichlet(0.0), "N": js.Neumann(), "P": js.Periodic()}[name]


def _solve(g, kappa, coarse, b, rtol=1e-8):
    A = -js.Diffusion(g, kappa)
    pc = js.Multigrid(coarse=coarse)
    sol = js.solve(js.LinearProblem(A, b), js.CG(pc), rtol=rtol, maxiter=3000)
    return A, pc.setup(A), sol


def _rhs(g, bc):
    if bc == "D":
        return np.ones(g.shape)
    b = np.random.default_rng(1).standard_normal(g.shape)
    return b - b.mean()


def _check_against_spsolve(A, b, u, singular, tol, res=1.01e-8):
    M = A.to_csr()
    r = np.linalg.norm(b.ravel() - M @ u.ravel()) / np.linalg.norm(b)
    assert r <= res, r
    if singular:                # Neumann / periodic: the zero-mean parts
        ref = np.append(spla.spsolve(M[:-1, :-1].tocsc(), b.ravel()[:-1]), 0.0)
        ref, u = ref - ref.mean(), u.ravel() - u.mean()
    else:
        ref = spla.spsolve(M.tocsc(), b.ravel())
    err = np.linalg.norm(u.ravel() - ref) / np.linalg.norm(ref)
    assert err <= tol, err


# --------------------------------------------------------------- Galerkin where it pays
# (case, shape, bc, kappa, CG iterations rediscretised / Galerkin measured to rtol 1e-8)
THIN = [
    ("channel 1 cell 1e4", (64, 64), "D", lambda s: _channel(s, 1, 1e4), 66, 9),
    ("channel 1 cell 1e6", (64, 64), "D", lambda s: _channel(s, 1, 1e6), 161, 9),
    ("channel 1 cell 1e4, vertical", (64, 64), "D", lambda s: _channel(s, 1, 1e4, "v"),
     66, 9),
    ("channel 2 cells 1e4, staircase", (64, 64), "D", lambda s: _channel(s, 2, 1e4, "d"),
     87, 14),
    # two cells on a block: the first coarse level resolves it, the second averages it
    ("channel 2 cells 1e4, aligned", (64, 64), "D", lambda s: _channel(s, 2, 1e4), 97, 11),
    ("barrier 1 cell 1e-4", (64, 64), "D", lambda s: _channel(s, 1, 1e-4), 30, 11),
    ("channel 1 cell 1e4, Neumann", (64, 64), "N", lambda s: _channel(s, 1, 1e4), 71, 9),
    ("channel 1 cell 1e4, periodic", (64, 64), "P", lambda s: _channel(s, 1, 1e4), 45, 9),
    ("channel 1 cell 1e4, 128^2", (128, 128), "D", lambda s: _channel(s, 1, 1e4), 112, 10),
    ("checkerboard of cells 1e6", (64, 64), "D", lambda s: _checker(s, 1, 1e6), 45, 10),
    ("checkerboard of cells 1e4", (64, 64), "D", lambda s: _checker(s, 1, 1e4), 39, 10),
    ("checkerboard of cells 1e6, Neumann", (64, 64), "N", lambda s: _checker(s, 1, 1e6),
     84, 6),
    ("checkerboard of cells 1e6, periodic", (64, 64), "P", lambda s: _checker(s, 1, 1e6),
     46, 5),
    ("checkerboard of cells 1e6, 128^2", (128, 128), "D", lambda s: _checker(s, 1, 1e6),
     84, 10),
    ("checkerboard of 2 x 2 blocks 1e6", (64, 64), "D", lambda s: _checker(s, 2, 1e6),
     176, 145),
    ("3-D channel 1 cell 1e4", (16, 16, 16), "D", lambda s: _channel(s, 1, 1e4), 22, 10),
    ("3-D channel 1 cell 1e4, 32^3", (32, 32, 32), "D", lambda s: _channel(s, 1, 1e4),
     37, 13),
    ("3-D checkerboard of cells 1e6", (16, 16, 16), "D", lambda s: _checker(s, 1, 1e6),
     14, 9),
    ("3-D checkerboard of 2 x 2 x 2 blocks 1e6", (16, 16, 16), "D",
     lambda s: _checker(s, 2, 1e6), 1327, 91),
]


@pytest.mark.parametrize("case, shape, bc, make, redisc, galerkin", THIN,
                         ids=[t[0] for t in THIN])
def test_auto_takes_galerkin_levels_for_thin_channels_and_checkerboards(
        case, shape, bc, make, redisc, galerkin):
    g = js.Grid(shape, bc=_bc(bc))
    kappa = make(shape)
    b = _rhs(g, bc)
    # 2 x 2 blocks of 1e6: condition ~1e10, so rtol 1e-8 is at the edge of what CG's
    # updated residual can reach in floating point: on an AVX2 host (Zen 3) it stagnated
    # at 1.3e-8 (ConvergenceFailure after 400 iterations), on AVX-512 hosts it reached
    # 1e-8 in 154; at 1e-7 auto / Galerkin take 139, rediscretised 182 (Zen 3)
    rtol = 1e-7 if case == "checkerboard of 2 x 2 blocks 1e6" else 1e-8
    A, M, sol = _solve(g, kappa, "auto", b, rtol)
    # the jump rule alone kept rediscretised levels (the old choice) ...
    assert M.jump <= MG.JUMP_RATIO["V"], M.jump
    # ... the conductance comparison takes Galerkin ones
    assert M.galerkin, (M.mismatch, M.mismatched)
    assert M.mismatched and M.mismatched[-1][0] >= M.mismatched[-1][1]
    assert M.mismatch > MG.MISMATCH_RATIO
    assert sol.retcode == js.ReturnCode.Success
    _, Mg, gal = _solve(g, kappa, "galerkin", b, rtol)
    assert gal.iters <= galerkin + 1, gal.iters
    assert sol.iters <= 1.5 * gal.iters + 2, (sol.iters, gal.iters)
    if redisc < 1000:           # (the 2 x 2 x 2 blocks: 1,327, not rerun here)
        _, _, red = _solve(g, kappa, "rediscretised", b, rtol)
        assert red.iters >= redisc - 2, red.iters    # what auto took before
        assert sol.iters < red.iters
    # (2 x 2 blocks of 1e6: condition ~1e10, CG's updated residual drifts from the true
    # one by a few times rtol)
    res = max(1e-7, 3 * rtol) if "2 x 2" in case else 1.01e-8
    _check_against_spsolve(A, b, sol.u, bc != "D", 1e-7, res)


def test_conductance_ratio_of_a_channel_and_a_checkerboard_is_exact():
    """The readings the thresholds are chosen from, in closed form: a channel of ``r``
    one cell wide on the first row of a block row, and a checkerboard of cells."""
    r = 1e4
    s = np.sqrt(r)
    harm = lambda x, y: 2 * x * y / (x + y)     # noqa: E731
    g = js.Grid((32, 32))
    kappa = np.ones(g.shape)
    kappa[16, :] = r                            # fine row 16: the first of block row 8
    M = js.Multigrid(coarse="rediscretised").setup(-js.Diffusion(g, kappa))
    q = _ratio(M, 1)[0]
    # along the channel: two faces of (r + 1) / 2 on the fine level, sqrt(r) coarse;
    # across: harm(1, r) and 1 fine, harm(1, sqrt(r)) twice coarse
    want = (2 * (r + 1) / 2 + harm(1.0, r) + 1.0) / (2 * s + 2 * harm(1.0, s))
    assert q[8, 1:-1] == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(s / 2, rel=0.03)           # about sqrt(r) / 2
    assert np.allclose(q[:6], 1.0) and np.allclose(q[11:], 1.0)
    kappa = _checker(g.shape, 1, r)
    M = js.Multigrid(coarse="rediscretised").setup(-js.Diffusion(g, kappa))
    q = _ratio(M, 1)[0]
    np.testing.assert_allclose(q, harm(1.0, r) / s, rtol=1e-12)   # 2 / sqrt(r), everywhere


def _ratio(M, level):
    f, c = M.levels[level - 1], M.levels[level]
    wf = MG._level_faces(f.kappa, f.c, M.per, f.sgn)[0][:, :f.kappa.size]
    wc = MG._level_faces(c.kappa, c.c, M.per, c.sgn)[0][:, :c.kappa.size]
    return MG.conductance_ratio(wf.reshape((3,) + f.shape), f.c, wc.reshape((3,) + c.shape),
                                c.c, f.act, c.shape)


@pytest.mark.parametrize("shape, bc, extent", [
    ((32, 32), "D", None), ((33, 31), "N", None), ((32, 48), "P", None),
    ((64, 16), "D", ((0, 1), (0, 4e-2))), ((9, 11, 13), "D", None), ((8, 8, 8), "P", None)])
def test_conductance_ratio_is_one_for_a_constant_coefficient(shape, bc, extent):
    """Odd axes, periodic wrap-around faces, semi-coarsening: a uniform ``kappa`` (any
    value) reads 1 on every cell of the first two coarse levels."""
    kw = {} if extent is None else {"extent": extent}
    g = js.Grid(shape, bc=_bc(bc), **kw)
    M = js.Multigrid(coarse="rediscretised", coarse_size=4).setup(
        -js.Diffusion(g, np.full(g.shape, 7.0)))
    for level in (1, 2):
        q = _ratio(M, level)
        assert q.shape == M.levels[level].shape
        np.testing.assert_allclose(q, 1.0, rtol=1e-13)
    Ma = js.Multigrid().setup(-js.Diffusion(g, np.full(g.shape, 7.0)))
    assert not Ma.galerkin and Ma.mismatch == pytest.approx(1.0, rel=1e-13)
    assert all(bad == 0 for bad, _ in Ma.mismatched)


# ---------------------------------------------------------- rediscretised where cheaper
def _smooth(shape):
    x = [(np.arange(n) + 0.5) / n for n in shape]
    X = np.meshgrid(*x, indexing="ij")
    return np.exp(np.sin(2 * np.pi * X[0]) * np.cos(2 * np.pi * X[1]))


def _noise(shape, s):
    return np.exp(s * np.random.default_rng(0).standard_normal(shape))


def _bar(shape, length):
    k = np.ones(shape)
    k[shape[0] // 3, shape[1] // 3:shape[1] // 3 + length] = 1e4
    return k


def _inclusion(shape):
    k = np.ones(shape)
    k[tuple(n // 3 for n in shape)] = 1e4
    return k


# (case, shape, bc, kappa, CG iterations of the rediscretised levels, the largest
# conductance factor measured)
KEEP = [
    ("uniform", (64, 64), "D", lambda s: np.ones(s), 7, 1.0),
    ("uniform, 128^2", (128, 128), "D", lambda s: np.ones(s), 7, 1.0),
    ("smooth exp(sin cos)", (128, 128), "D", _smooth, 8, 1.0),
    ("smooth, Neumann", (128, 128), "N", _smooth, 8, 1.0),
    ("smooth, periodic", (128, 128), "P", _smooth, 7, 1.0),
    ("noise exp(N(0, 1))", (128, 128), "D", lambda s: _noise(s, 1.0), 14, 2.3),
    ("noise exp(N(0, 2))", (128, 128), "D", lambda s: _noise(s, 2.0), 31, 18.7),
    ("inclusion of one cell 1e4", (64, 64), "D", _inclusion, 7, 1.45),
    ("diagonal of cells 1e6", (64, 64), "D", lambda s: _channel(s, 1, 1e6, "d"), 9, 1.33),
    ("bar 1 x 4 of 1e4", (128, 128), "D", lambda s: _bar(s, 4), 11, 47.2),
    ("checkerboard of 2 x 2 blocks 1e3", (64, 64), "D", lambda s: _checker(s, 2, 1e3), 41,
     15.8),
    ("3-D uniform", (32, 32, 32), "D", lambda s: np.ones(s), 7, 1.0),
    ("3-D smooth", (32, 32, 32), "D", _smooth, 8, 1.06),
    ("3-D noise exp(N(0, 1))", (32, 32, 32), "D", lambda s: _noise(s, 1.0), 11, 1.87),
]


@pytest.mark.parametrize("case, shape, bc, make, redisc, factor", KEEP,
                         ids=[t[0] for t in KEEP])
def test_auto_keeps_rediscretised_levels_for_smooth_noisy_and_isolated_features(
        case, shape, bc, make, redisc, factor):
    g = js.Grid(shape, bc=_bc(bc))
    kappa = make(shape)
    b = _rhs(g, bc)
    A, M, sol = _solve(g, kappa, "auto", b)
    assert not M.galerkin, (M.mismatch, M.mismatched)
    assert M.mismatch == pytest.approx(factor, rel=0.01, abs=0.01)
    assert all(bad < limit for bad, limit in M.mismatched), M.mismatched
    assert len(M.mismatched) == 2       # both coarse levels were checked
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= redisc + 1, sol.iters
    if case in ("uniform", "noise exp(N(0, 2))", "checkerboard of 2 x 2 blocks 1e3"):
        _check_against_spsolve(A, b, sol.u, bc != "D", 1e-7)


def test_the_known_misses_are_stated():
    """Below :data:`MISMATCH_RATIO` the rule keeps rediscretised levels although Galerkin
    ones take fewer iterations: a channel of 1e3 one cell wide reads 15 (54 CG iterations
    against 10 at 128^2; 38 against 9 at 64^2), and a checkerboard of cells 1 : 1e3 15.8
    -- as does the checkerboard of 2 x 2 blocks of 1e3 on the second level, where Galerkin
    levels are slower (62 against 41 at 64^2), which is why the ratio is not lower."""
    g = js.Grid((64, 64))
    M = js.Multigrid().setup(-js.Diffusion(g, _channel(g.shape, 1, 1e3)))
    assert not M.galerkin and M.mismatch == pytest.approx(15.0, rel=0.01)
    M = js.Multigrid().setup(-js.Diffusion(g, _checker(g.shape, 1, 1e3)))
    assert not M.galerkin
    assert M.mismatch == pytest.approx((1 + 1e3) / (2 * np.sqrt(1e3)), rel=1e-9)
    M = js.Multigrid().setup(-js.Diffusion(g, _checker(g.shape, 2, 1e3)))
    assert not M.galerkin and M.mismatched[0][0] == 0
    assert M.mismatch == pytest.approx((1 + 1e3) / (2 * np.sqrt(1e3)), rel=1e-9)


def test_noise_is_not_counted_however_large_the_grid():
    """Isolated cells above the ratio are not counted (a mismatched cell needs a
    mismatched neighbour): ``exp(N(0, 2))`` at 256^2 reads 33.6 on one cell."""
    g = js.Grid((256, 256))
    M = js.Multigrid().setup(-js.Diffusion(g, _noise(g.shape, 2.0)))
    assert M.mismatch > MG.MISMATCH_RATIO and not M.galerkin
    assert M.mismatched[0][0] == 0


def test_the_check_runs_only_where_the_jump_rule_does_not_decide():
    g = js.Grid((64, 64))
    M = js.Multigrid().setup(-js.Laplacian(g))
    assert not M.galerkin and M.mismatch == 1.0 and M.mismatched == ()
    blocks = _checker(g.shape, 16, 1e3)         # the jump rule takes these
    M = js.Multigrid().setup(-js.Diffusion(g, blocks))
    assert M.galerkin and M.jump > MG.JUMP_RATIO["V"] and M.mismatched == ()
    for coarse in ("rediscretised", "galerkin"):
        M = js.Multigrid(coarse=coarse).setup(-js.Diffusion(g, _channel(g.shape, 1, 1e4)))
        assert M.galerkin == (coarse == "galerkin") and M.mismatched == ()


@pytest.mark.parametrize("shift", [0.0, 2.5])
def test_the_checks_face_weights_are_the_smoothers(shift):
    """The face weights and diagonals the check forms for the first levels are those the
    rediscretised hierarchy forms itself (the shift added once): the same cycle, bit for
    bit."""
    g = js.Grid((48, 40), bc=[(js.Dirichlet(0.0), js.Neumann()), (js.Periodic(),) * 2])
    D = js.Diffusion(g, _smooth(g.shape))
    A = -D if shift == 0.0 else shift * js.Identity(g) - D
    Ma = js.Multigrid().setup(A)
    Mr = js.Multigrid(coarse="rediscretised").setup(A)
    assert not Ma.galerkin and len(Ma.mismatched) == 2 and Ma.nlevels == Mr.nlevels >= 4
    for la, lr in zip(Ma.levels[:-1], Mr.levels[:-1]):
        for x, y in zip(la.faces, lr.faces):
            np.testing.assert_array_equal(x, y)
    r = np.random.default_rng(3).standard_normal(g.size)
    np.testing.assert_array_equal(Ma(r), Mr(r))


def test_w_cycles_take_the_check_too():
    """Below the W-cycle's jump ratio (30, on the grid) a checkerboard of cells of 1 : 25
    reads 0.38 -- kept; the check runs and reports it."""
    g = js.Grid((64, 64))
    M = js.Multigrid(cycle="W").setup(-js.Diffusion(g, _checker(g.shape, 1, 25.0)))
    assert M.jump <= MG.JUMP_RATIO["W"] and not M.galerkin
    assert M.mismatch == pytest.approx(5.0 / (2 * 25 / 26), rel=1e-9)
