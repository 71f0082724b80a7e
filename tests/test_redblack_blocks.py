"""The vector blocks of the red-black sweeps (kernels/cpu/redblack_blocks.py): one block
against its NumPy formula, and the fused sweeps that use them against the one-colour
reference kernel on rows long enough for many blocks, in float64 and float32."""
import numpy as np
import pytest
from numba import njit

from jitsolve.kernels.cpu import multigrid as K
from jitsolve.kernels.cpu.redblack_blocks import (RB_WIDTH, data_address, gs_block_lap2,
                                                  gs_block_lap3, load_real)


@njit(cache=True)
def _blocks(uf, ff, base, j0, nb, m0, p0, m1, p1, wm0, wp0, wm1, wp1, c2, inv, idg, axis0):
    ua = data_address(uf)
    fa = data_address(ff)
    cr = load_real(ua, uf.dtype, base + j0 - 1)
    for b in range(nb):
        if axis0:
            cr = gs_block_lap3(ua, fa, uf.dtype, base, j0 + b * RB_WIDTH, m0, p0, m1, p1, wm0,
                               wp0, wm1, wp1, c2, inv, idg, cr)
        else:
            cr = gs_block_lap2(ua, fa, uf.dtype, base, j0 + b * RB_WIDTH, m0, p0, m1, p1, wm0,
                               wp0, wm1, wp1, c2, inv, idg, cr)
    return cr


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis0", [True, False])
@pytest.mark.parametrize("j0", [1, 2, 5])
def test_block_equals_its_numpy_formula(dtype, axis0, j0):
    rng = np.random.default_rng(7)
    n2, nb = 3 * RB_WIDTH + 6, 3
    uf = rng.standard_normal(5 * n2).astype(dtype)
    ff = rng.standard_normal(5 * n2).astype(dtype)
    base, m0, p0, m1, p1 = 2 * n2, 0, 4 * n2, n2, 3 * n2
    wm0, wp0, wm1, wp1, c2, inv, idg = 1.3, 0.7, 2.1, 0.4, 1.9, -0.6, 0.11
    row = lambda off: uf[off:off + n2].astype(np.float64)
    u, f = row(base), ff[base:base + n2].astype(np.float64)
    j = np.arange(j0, j0 + nb * RB_WIDTH - 1, 2)          # the cells of the block's colour
    ur = uf[base:base + n2]
    off = c2 * (ur[j - 1] + ur[j + 1]).astype(np.float64)  # summed in the entries' type
    if axis0:
        off = wm0 * row(m0)[j] + wp0 * row(p0)[j] + wm1 * row(m1)[j] + wp1 * row(p1)[j] + off
    else:
        off = wm1 * row(m1)[j] + wp1 * row(p1)[j] + off
    want = u.copy()
    want[j] = (f[j] * inv - off) * idg
    before = uf.copy()
    carry = _blocks(uf, ff, base, j0, nb, m0, p0, m1, p1, wm0, wp0, wm1, wp1, c2, inv, idg,
                    axis0)
    np.testing.assert_array_equal(uf[base:base + n2], want.astype(dtype))
    outside = np.ones(uf.size, dtype=bool)
    outside[base:base + n2] = False
    np.testing.assert_array_equal(uf[outside], before[outside])   # other rows untouched
    assert carry == before[base + j0 + nb * RB_WIDTH - 1]         # the next block's carry


def _bc_arrays(bcs):
    per = np.zeros(3, dtype=np.int64)        # the library's type: no extra compiles
    sgn = np.ones((3, 2))
    for a, b in enumerate(bcs):
        if b == "P":
            per[a] = 1
        elif b == "D":
            sgn[a] = -1.0
    return per, sgn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,bcs", [((1, 6, 64), "xDN"), ((1, 6, 37), "xPD"),
                                       ((3, 4, 50), "DPN"), ((4, 4, 17), "PDD"),
                                       ((2, 3, 24), "NDP"), ((3, 2, 9), "DDD"),
                                       ((1, 4, 80), "xNP"), ((5, 3, 33), "NND")])
def test_fused_sweeps_on_long_rows_match_the_half_sweeps(dtype, shape, bcs):
    """Rows of 9 to 80 cells (many blocks, and a stride-2 tail of every length): the
    fused sweeps (parallel and serial; two and three half-sweeps; from a guess and from
    zero) equal the one-colour scalar kernels bit for bit, for the Laplacian (a shift of
    the diagonal included) and for a Diffusion operator from its face weights."""
    rng = np.random.default_rng(11)
    per, sgn = _bc_arrays(bcs)
    act = np.array([1 if s > 1 else 0 for s in shape], dtype=np.int64)
    c = act * np.array([1.3, 2.0, 0.7])
    k = np.exp(rng.standard_normal(shape))
    n = int(np.prod(shape))
    w, dg = np.empty((3, n + shape[2])), np.empty(n)
    K.diffusion_faces(k, c, per, sgn, w, dg)
    f = rng.standard_normal(shape).astype(dtype)
    u0 = rng.standard_normal(shape).astype(dtype)
    for nh in (2, 3):
        for color in (0, 1):
            for first in (False, True):
                ref = u0.copy()
                for kk in range(nh):
                    K.rbgs_diffusion(ref, f, k, c, per, sgn, -1.7, (color + kk) % 2,
                                     first and kk == 0)
                for sweep in (K.gs_sweep_diffusion, K.gs_sweep_diffusion_serial):
                    v = np.full(shape, np.nan, dtype) if first else u0.copy()
                    sweep(v, f, w, dg, c, per, sgn, -1.7, color, first, nh, np.empty(0))
                    np.testing.assert_array_equal(v, ref)
    for c in (act * np.array([1.3, 2.0, 0.7]), np.append(act * np.array([0.9, 1.1, 1.6]), 0.4)):
        f = rng.standard_normal(shape).astype(dtype)
        u0 = rng.standard_normal(shape).astype(dtype)
        for nh in (2, 3):
            for color in (0, 1):
                ref = u0.copy()
                for k in range(nh):
                    K.rbgs_laplacian(ref, f, c, per, sgn, -1.7, (color + k) % 2, False)
                for sweep in (K.gs_sweep_laplacian, K.gs_sweep_laplacian_serial):
                    v = u0.copy()
                    sweep(v, f, c, per, sgn, -1.7, color, False, nh, np.empty(0))
                    np.testing.assert_array_equal(v, ref)
