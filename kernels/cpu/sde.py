"""Compiled SDE integration loops: Brownian tree noise, method steps, whole-path loops,
ensemble kernels (one path per thread) and streaming mean/variance reductions.

User functions arrive as first-class function values (numba cfuncs of the fixed
signatures in ``jitsolve.functions.SIGNATURES``), so every loop here is compiled and
disk-cached once for all user functions (DESIGN.md, "The user-function boundary").

Noise: a virtual Brownian tree over the normalised time x = (t - t0)/(t1 - t0) in [0, 1],
where the kernels' ``t1`` (``fpar[1]``) is the tree's end: past the solve's end for a fixed
step that does not divide the span into 2^M steps, which then stops at x = ``xend``
(``fpar[12]``; see ``solvers.sde.brownian.fixed_grid``).
B(1) ~ N(0, 1) is keyed by node 0; the bridge midpoint of the dyadic interval with heap
index i (root [0, 1] is i = 1, children 2i and 2i+1) is
``B(mid) = (B(a) + B(b))/2 + sqrt(b - a)/2 * Z_i`` with Z_i the Philox normal keyed by
(seed, trajectory, i, component).  Below ``maxdepth`` a query off the dyadic points is
a Brownian-bridge sample inside its leaf (keyed by the leaf and stream 1).  W(t) is
``sqrt(|t1 - t0|) * B(x)``.  Every value is a pure function of its keys: a path is the
same in every pass, at every step size on the dyadic times t0 + k (t1 - t0) / 2^m, and
any piece of it can be regenerated without storing it.  A query walks a stack cached
per path, so a monotone sweep over a dyadic grid costs one normal per step.

The order-1.5 methods (SRI, SRA) need I_(1,0) = int (W(s) - W(t_n)) ds over each step: for
them the tree also carries each node's space-time Lévy area and the running integral of B
(see "tree with Lévy area" below), so I_(1,0) belongs to the same path at every step size,
and after a rejection.  That tree bisects differently, so SRIW1/SRA1 see another Brownian
path than EM/EulerHeun/Milstein for the same seed (each family's path is reproducible,
nested across dyadic steps and regenerable).

Tableau layout for the stochastic Runge-Kutta methods (``tab``, shape (s, 7 + 4 s)):
columns c0, c1, alpha, beta1, beta2, beta3, beta4, then A0 (s), A1 (s), B0 (s), B1 (s).

References: Kloeden & Platen (1992) for EM, Milstein and Euler-Heun; Rößler, SIAM J.
Numer. Anal. 48 (2010) 922-952 for SRI/SRA; Rackauckas & Nie, DCDS-B 22 (2017) for the
error estimate (delta*|E1| + |E2|) and rejection with Brownian bridges; Li et al. (2020)
and Kidger et al. (2021) for the virtual Brownian tree.
"""
import numpy as np
from numba import njit, prange

from .borrow import borrow, keep_alive
from .philox import normal_pair
from .stepcontrol import error_norm, pi_factor, reject_factor

__all__ = ["EM", "EULERHEUN", "MILSTEIN", "SRI", "SRA", "DIAGONAL", "SCALAR", "GENERAL",
           "SUCCESS", "MAXITERS", "DTLESSTHANMIN", "UNSTABLE", "FULL", "Z_OFFSET", "LEVELS",
           "tree_alloc", "tree_init", "tree_query", "tree_sample", "levy_init", "levy_query", "levy_sample", "integrate_path", "ensemble_paths",
           "ensemble_moments", "FPAR", "IPAR", "propose_x", "control_step", "moments_add_path",
           "moments_merge"]

# method codes
EM, EULERHEUN, MILSTEIN, SRI, SRA = 0, 1, 2, 3, 4
# noise codes
DIAGONAL, SCALAR, GENERAL = 0, 1, 2
# return codes of the loops
SUCCESS, MAXITERS, DTLESSTHANMIN, UNSTABLE, FULL = 0, 1, 2, 3, 4

Z_OFFSET = 1 << 22   # (component ids above this are reserved)
LEVELS = 62          # tree levels held per path (maxdepth <= LEVELS - 2)
STREAM_MID = 0
STREAM_LEAF = 1
SQRT3 = np.sqrt(3.0)

#: names of the packed scalar parameters (fpar: float64, ipar: int64); Milstein's
#: ``has_cs``: 0 derivative-free, 1 complex step of g, 2 the user's ggprime (``gc`` its twin)
FPAR = ("t0", "t1", "dt", "dtmin", "xstep", "safety", "qmin", "qmax", "beta1", "beta2",
        "delta", "eps_cs", "xend")
IPAR = ("method", "noise", "m", "nerr", "adaptive", "maxiters", "nsteps", "maxdepth",
        "save_every", "strat", "has_cs", "save_noise", "log2_nsteps", "block")


# ----------------------------------------------------------------------------- noise
@njit(cache=False)
def _fill_normals(seed, traj, node, stream, compid, z):
    lastb = -1
    z0 = 0.0
    z1 = 0.0
    for j in range(compid.size):
        c = compid[j]
        b = c >> 1
        if b != lastb:
            z0, z1 = normal_pair(seed, traj, node, b, stream)
            lastb = b
        z[j] = z1 if (c & 1) else z0


# Tree state of one path, two arrays (hot helpers take few array arguments: every array
# argument of a call costs a reference-count increment and decrement):
#   tf (LEVELS + 2, 2 + 4 nc) float64: per level a, b, B(a)[nc], B(b)[nc], B(mid)[nc],
#      cached sibling normals[nc]; row LEVELS is scratch, row LEVELS + 1 the last answer
#   ti (LEVELS + 2, max(4, nc)) int64: per level node, mid known, cache key + 1, cache
#      parity; row LEVELS col 0 the current depth; row LEVELS + 1 the component ids
def tree_alloc(compid):
    """Tree state arrays for the component ids ``compid``."""
    nc = compid.size
    tf = np.zeros((LEVELS + 2, 2 + 4 * nc))
    ti = np.zeros((LEVELS + 2, max(4, nc)), dtype=np.int64)
    ti[LEVELS + 1, :nc] = compid
    return tf, ti


@njit(cache=False)
def _tree_alloc(compid):
    nc = compid.size
    tf = np.zeros((LEVELS + 2, 2 + 4 * nc))
    ti = np.zeros((LEVELS + 2, max(4, nc)), dtype=np.int64)
    for j in range(nc):
        ti[LEVELS + 1, j] = compid[j]
    return tf, ti


@njit(cache=False)
def _mid_normals(seed, traj, node, nc, tf, ti, d):
    """Normals of tree node ``node`` (held at level d) into the scratch row: siblings 2k
    and 2k+1 share one Box-Muller pair per component (counter k, block = component id),
    so a sweep pays one Philox call per two nodes; the sibling's half waits in the
    level's cache."""
    key = node >> 1
    par = node & 1
    oc = 2 + 3 * nc
    if ti[d, 2] == key + 1 and ti[d, 3] == par:
        for j in range(nc):
            tf[LEVELS, j] = tf[d, oc + j]
        ti[d, 2] = 0
        return
    for j in range(nc):
        z0, z1 = normal_pair(seed, traj, key, ti[LEVELS + 1, j], STREAM_MID)
        if par:
            tf[LEVELS, j] = z1
            tf[d, oc + j] = z0
        else:
            tf[LEVELS, j] = z0
            tf[d, oc + j] = z1
    ti[d, 2] = key + 1
    ti[d, 3] = 1 - par


@njit(cache=False)
def tree_init(seed, traj, nc, tf, ti):
    """Start a path's Brownian tree: level 0 is [0, 1] with B(0) = 0, B(1) ~ N(0, 1)."""
    for d in range(LEVELS):
        ti[d, 2] = 0
    _mid_normals(seed, traj, 0, nc, tf, ti, 0)
    tf[0, 0] = 0.0
    tf[0, 1] = 1.0
    for j in range(nc):
        tf[0, 2 + j] = 0.0
        tf[0, 2 + nc + j] = tf[LEVELS, j]
        tf[LEVELS + 1, j] = 0.0
    ti[0, 0] = 1
    ti[0, 1] = 0
    ti[LEVELS, 0] = 0


@njit(cache=False)
def tree_query(x, maxdepth, seed, traj, nc, tf, ti):
    """B(x) for every component into ``tf[LEVELS + 1, :nc]``; walks from the cached stack."""
    out = LEVELS + 1
    if x < 0.0:
        x = 0.0
    elif x > 1.0:
        x = 1.0
    d = ti[LEVELS, 0]
    while d > 0 and not (tf[d, 0] <= x and x <= tf[d, 1]):
        d -= 1
    while True:
        a = tf[d, 0]
        b = tf[d, 1]
        if x == a:
            for j in range(nc):
                tf[out, j] = tf[d, 2 + j]
            break
        if x == b:
            for j in range(nc):
                tf[out, j] = tf[d, 2 + nc + j]
            break
        if d >= maxdepth:
            w = (x - a) / (b - a)
            sd = np.sqrt((x - a) * (b - x) / (b - a))
            lastb = -1
            z0 = 0.0
            z1 = 0.0
            for j in range(nc):
                c = ti[out, j]
                if (c >> 1) != lastb:
                    z0, z1 = normal_pair(seed, traj, ti[d, 0], c >> 1, STREAM_LEAF)
                    lastb = c >> 1
                wa = tf[d, 2 + j]
                tf[out, j] = wa + w * (tf[d, 2 + nc + j] - wa) + sd * (z1 if (c & 1) else z0)
            break
        if ti[d, 1] == 0:
            _mid_normals(seed, traj, ti[d, 0], nc, tf, ti, d)
            sd = 0.5 * np.sqrt(b - a)
            for j in range(nc):
                tf[d, 2 + 2 * nc + j] = (0.5 * (tf[d, 2 + j] + tf[d, 2 + nc + j])
                                         + sd * tf[LEVELS, j])
            ti[d, 1] = 1
        mid = 0.5 * (a + b)
        if x == mid:
            for j in range(nc):
                tf[out, j] = tf[d, 2 + 2 * nc + j]
            break
        dn = d + 1
        if x < mid:
            tf[dn, 0] = a
            tf[dn, 1] = mid
            for j in range(nc):
                tf[dn, 2 + j] = tf[d, 2 + j]
                tf[dn, 2 + nc + j] = tf[d, 2 + 2 * nc + j]
            ti[dn, 0] = 2 * ti[d, 0]
        else:
            tf[dn, 0] = mid
            tf[dn, 1] = b
            for j in range(nc):
                tf[dn, 2 + j] = tf[d, 2 + 2 * nc + j]
                tf[dn, 2 + nc + j] = tf[d, 2 + nc + j]
            ti[dn, 0] = 2 * ti[d, 0] + 1
        ti[dn, 1] = 0
        d = dn
    ti[LEVELS, 0] = d


@njit(cache=True)
def tree_sample(xs, maxdepth, seed, traj, compid, out):
    """B at the normalised times ``xs`` (any order) into ``out`` (len(xs), nc)."""
    nc = compid.size
    tf, ti = _tree_alloc(compid)
    tree_init(seed, traj, nc, tf, ti)
    for k in range(xs.size):
        tree_query(xs[k], maxdepth, seed, traj, nc, tf, ti)
        for j in range(nc):
            out[k, j] = tf[LEVELS + 1, j]


# --------------------------------------------------------------- tree with Lévy area
# For the order-1.5 methods the tree also carries the space-time Lévy area of every node,
# H = (1/h) int_a^b (B(r) - B(a) - (r - a)/h (B(b) - B(a))) dr ~ N(0, h/12), and the
# running integral I(x) = int_0^x B, so that I_(1,0) over any step is the integral of the
# same Brownian path at every step size (consistent under refinement and rejection).
# Bisection (exact conditional law, two normals per node and component):
#   B(mid) = (B(a) + B(b))/2 + 3/2 H + sqrt(h)/4 Z1,
#   H_L, H_R = (S +- D)/2 with S = H/2 - sqrt(h)/4 Z1, D = sqrt(h/12) Z2,
#   I(mid) = I(a) + h/2 ((B(a) + B(mid))/2 + H_L).
# Inside a leaf, (B(x), I(x)) are drawn from their Gaussian law given B(a), B(b), H.
# Layout: tf (LEVELS + 2, 2 + 9 m): a, b, Ba, Bb, Ia, Ib, H, Bm, Im, HL, HR (m each);
# row LEVELS + 1 holds the answer B(x)[m], I(x)[m]; ti as for the plain tree.
STREAM_LEVY = 2
STREAM_LEVY_LEAF = 3


@njit(cache=False)
def _levy_alloc(compid):
    m = compid.size
    tf = np.zeros((LEVELS + 2, 2 + 9 * m))
    ti = np.zeros((LEVELS + 2, max(4, m)), dtype=np.int64)
    for j in range(m):
        ti[LEVELS + 1, j] = compid[j]
    return tf, ti


@njit(cache=False)
def levy_init(seed, traj, m, tf, ti):
    """Root [0, 1]: B(1) = Z0, H = Z1 / sqrt(12), I(1) = B(1)/2 + H."""
    tf[0, 0] = 0.0
    tf[0, 1] = 1.0
    for j in range(m):
        z0, z1 = normal_pair(seed, traj, 0, ti[LEVELS + 1, j], STREAM_LEVY)
        H = z1 / np.sqrt(12.0)
        tf[0, 2 + j] = 0.0
        tf[0, 2 + m + j] = z0
        tf[0, 2 + 2 * m + j] = 0.0
        tf[0, 2 + 3 * m + j] = 0.5 * z0 + H
        tf[0, 2 + 4 * m + j] = H
        tf[LEVELS + 1, j] = 0.0
        tf[LEVELS + 1, m + j] = 0.0
    ti[0, 0] = 1
    ti[0, 1] = 0
    ti[LEVELS, 0] = 0


@njit(cache=False)
def levy_query(x, maxdepth, seed, traj, m, tf, ti):
    """B(x) and I(x) for every component into ``tf[LEVELS + 1, :2m]``."""
    out = LEVELS + 1
    oBa = 2
    oBb = 2 + m
    oIa = 2 + 2 * m
    oIb = 2 + 3 * m
    oH = 2 + 4 * m
    oBm = 2 + 5 * m
    oIm = 2 + 6 * m
    oHL = 2 + 7 * m
    oHR = 2 + 8 * m
    if x < 0.0:
        x = 0.0
    elif x > 1.0:
        x = 1.0
    d = ti[LEVELS, 0]
    while d > 0 and not (tf[d, 0] <= x and x <= tf[d, 1]):
        d -= 1
    while True:
        a = tf[d, 0]
        b = tf[d, 1]
        if x == a:
            for j in range(m):
                tf[out, j] = tf[d, oBa + j]
                tf[out, m + j] = tf[d, oIa + j]
            break
        if x == b:
            for j in range(m):
                tf[out, j] = tf[d, oBb + j]
                tf[out, m + j] = tf[d, oIb + j]
            break
        h = b - a
        if d >= maxdepth:
            tau = x - a
            v11 = tau * (h - tau) / h
            v12 = tau * tau * (h - tau) / (2.0 * h)
            v13 = tau * (h - tau) / 2.0
            v22 = tau ** 3 / 3.0 - tau ** 4 / (4.0 * h)
            v23 = h * tau * tau / 4.0 - tau ** 3 / 6.0
            v33 = h ** 3 / 12.0
            c11 = max(v11 - v13 * v13 / v33, 0.0)
            c12 = v12 - v13 * v23 / v33
            c22 = v22 - v23 * v23 / v33
            L11 = np.sqrt(c11)
            L21 = c12 / L11 if L11 > 0.0 else 0.0
            L22 = np.sqrt(max(c22 - L21 * L21, 0.0))
            for j in range(m):
                z0, z1 = normal_pair(seed, traj, ti[d, 0], ti[out, j], STREAM_LEVY_LEAF)
                Ba = tf[d, oBa + j]
                dB = tf[d, oBb + j] - Ba
                hH = h * tf[d, oH + j]
                bt = v13 / v33 * hH + L11 * z0
                jt = v23 / v33 * hH + L21 * z0 + L22 * z1
                tf[out, j] = Ba + tau / h * dB + bt
                tf[out, m + j] = tf[d, oIa + j] + tau * Ba + tau * tau / (2.0 * h) * dB + jt
            break
        if ti[d, 1] == 0:
            sq = np.sqrt(h)
            s12 = np.sqrt(h / 12.0)
            for j in range(m):
                z1, z2 = normal_pair(seed, traj, ti[d, 0], ti[out, j], STREAM_LEVY)
                H = tf[d, oH + j]
                Ba = tf[d, oBa + j]
                Bm = 0.5 * (Ba + tf[d, oBb + j]) + 1.5 * H + 0.25 * sq * z1
                S = 0.5 * H - 0.25 * sq * z1
                D = s12 * z2
                HL = 0.5 * (S + D)
                tf[d, oBm + j] = Bm
                tf[d, oHL + j] = HL
                tf[d, oHR + j] = 0.5 * (S - D)
                tf[d, oIm + j] = tf[d, oIa + j] + 0.5 * h * (0.5 * (Ba + Bm) + HL)
            ti[d, 1] = 1
        mid = 0.5 * (a + b)
        if x == mid:
            for j in range(m):
                tf[out, j] = tf[d, oBm + j]
                tf[out, m + j] = tf[d, oIm + j]
            break
        dn = d + 1
        if x < mid:
            tf[dn, 0] = a
            tf[dn, 1] = mid
            for j in range(m):
                tf[dn, oBa + j] = tf[d, oBa + j]
                tf[dn, oBb + j] = tf[d, oBm + j]
                tf[dn, oIa + j] = tf[d, oIa + j]
                tf[dn, oIb + j] = tf[d, oIm + j]
                tf[dn, oH + j] = tf[d, oHL + j]
            ti[dn, 0] = 2 * ti[d, 0]
        else:
            tf[dn, 0] = mid
            tf[dn, 1] = b
            for j in range(m):
                tf[dn, oBa + j] = tf[d, oBm + j]
                tf[dn, oBb + j] = tf[d, oBb + j]
                tf[dn, oIa + j] = tf[d, oIm + j]
                tf[dn, oIb + j] = tf[d, oIb + j]
                tf[dn, oH + j] = tf[d, oHR + j]
            ti[dn, 0] = 2 * ti[d, 0] + 1
        ti[dn, 1] = 0
        d = dn
    ti[LEVELS, 0] = d


@njit(cache=True)
def levy_sample(xs, maxdepth, seed, traj, compid, out):
    """B and I at the normalised times ``xs`` into ``out`` (len(xs), 2 m)."""
    m = compid.size
    tf, ti = _levy_alloc(compid)
    levy_init(seed, traj, m, tf, ti)
    for k in range(xs.size):
        levy_query(xs[k], maxdepth, seed, traj, m, tf, ti)
        for j in range(2 * m):
            out[k, j] = tf[LEVELS + 1, j]


# ----------------------------------------------------------------------------- steps
@njit(cache=False)
def _geval(noise, gv, gm, gvec, gmat, u, p, t):
    if noise == GENERAL:
        gm(gmat, u, p, t)
    else:
        gv(gvec, u, p, t)


@njit(cache=False)
def _gx(noise, gvec, gmat, x, i):
    """(G x)_i for the noise kind: diagonal g_i x_i, scalar g_i x_0, general sum_j G_ij x_j."""
    if noise == DIAGONAL:
        return gvec[i] * x[i]
    if noise == SCALAR:
        return gvec[i] * x[0]
    acc = 0.0
    for j in range(x.size):
        acc += gmat[i, j] * x[j]
    return acc


@njit(cache=False)
def _step_heun(f, gv, gm, noise, u, p, t, hs, dW, unew, wk, gk):
    """Euler-Heun (Stratonovich): predictor u + f h + G dW, trapezoidal corrector."""
    n = u.size
    F0 = wk[0]
    G0 = wk[1]
    F1 = wk[2]
    G1 = wk[3]
    ub = wk[4]
    f(F0, u, p, t)
    _geval(noise, gv, gm, G0, gk[0], u, p, t)
    for i in range(n):
        ub[i] = u[i] + hs * F0[i] + _gx(noise, G0, gk[0], dW, i)
    f(F1, ub, p, t + hs)
    _geval(noise, gv, gm, G1, gk[1], ub, p, t + hs)
    for i in range(n):
        unew[i] = (u[i] + 0.5 * hs * (F0[i] + F1[i])
                   + 0.5 * (_gx(noise, G0, gk[0], dW, i) + _gx(noise, G1, gk[1], dW, i)))
    return 2


@njit(cache=False, inline="always")
def _fd_step(u, atol):
    """The central-difference step for a state component: ``6e-6 max(|u|, atol)``, or
    ``6e-6`` when both are 0."""
    sc = max(abs(u), atol)
    return 6e-6 * (sc if sc > 0.0 else 1.0)


@njit(cache=False)
def _step_milstein(f, gv, gc, noise, u, p, pc, t, hs, dW, unew, wk, cwk, has_cs, strat, eps,
                   atol):
    """Milstein for diagonal and scalar noise.  The g'g term is the user's Milstein term
    ``ggprime`` when ``has_cs == 2`` (then ``gc`` is its complex twin, evaluated at real
    arguments), else comes from complex-step differentiation of g (exact to rounding)
    when g compiles for complex states (diagonal: d g_i / d u_i, one evaluation per
    component; scalar: the directional derivative J_g g in one evaluation), else from
    central differences, two evaluations: diagonal noise ``g_i (g_i(u + d) - g_i(u -
    d)) / (2 d_i)``, scalar noise ``(g(u + e g) - g(u - e g)) / (2 e)``, the steps
    ``d_i = 6e-6 max(|u_i|, atol_i)`` (:func:`_fd_step`) and ``e |g_j| <= d_j``.  (The
    one-sided derivative-free form of Kloeden & Platen 11.1, (g(u + f h + g sqrt h) -
    g(u)) / sqrt h, errs by O(sqrt h), which the Stratonovich dW^2 turns into strong
    order 1/2.)"""
    n = u.size
    ha = abs(hs)
    F0 = wk[0]
    G0 = wk[1]
    D = wk[2]
    ub = wk[3]
    G1 = wk[4]
    f(F0, u, p, t)
    gv(G0, u, p, t)
    nf = 1
    if has_cs == 2:
        uc = cwk[0]
        gcv = cwk[1]
        for i in range(n):
            uc[i] = u[i]
        gc(gcv, uc, pc, t)
        for i in range(n):
            D[i] = gcv[i].real
    elif has_cs:
        uc = cwk[0]
        gcv = cwk[1]
        if noise == DIAGONAL:
            for k in range(n):
                for i in range(n):
                    uc[i] = u[i]
                uc[k] = u[k] + 1j * eps
                gc(gcv, uc, pc, t)
                D[k] = gcv[k].imag / eps * G0[k]
        else:
            for i in range(n):
                uc[i] = u[i] + 1j * eps * G0[i]
            gc(gcv, uc, pc, t)
            for i in range(n):
                D[i] = gcv[i].imag / eps
    else:
        # central differences, steps of 6e-6 of each component's scale max(|u_i|,
        # atol_i) (truncation and rounding both near 1e-11 relative where g varies on
        # that scale; a scale of 1 made states far below 1 cross zero: 8e-3 off at 1e-5)
        G2 = wk[5]
        finite = True
        for i in range(n):
            if not (np.isfinite(u[i]) and np.isfinite(G0[i])):
                finite = False
        if not finite:
            for i in range(n):
                D[i] = np.nan
        elif noise == DIAGONAL:
            # each u_i moved by +-d_i at once (g_i depends on u_i only):
            # g_i g_i' = g_i (g_i(u + d) - g_i(u - d)) / (2 d_i)
            for i in range(n):
                ub[i] = u[i] + _fd_step(u[i], atol[i])
            gv(G1, ub, p, t)
            for i in range(n):
                ub[i] = u[i] - _fd_step(u[i], atol[i])
            gv(G2, ub, p, t)
            for i in range(n):
                d = _fd_step(u[i], atol[i])
                D[i] = G0[i] * ((G1[i] - G2[i]) / (2.0 * d)) if G0[i] != 0.0 else 0.0
        else:
            # along g: (g(u + e g) - g(u - e g)) / (2 e) = J_g g, e |g_j| <= d_j for all j
            e = np.inf
            for j in range(n):
                if G0[j] != 0.0:
                    e = min(e, _fd_step(u[j], atol[j]) / abs(G0[j]))
            if e == np.inf:
                for i in range(n):
                    D[i] = 0.0
            else:
                for i in range(n):
                    ub[i] = u[i] + e * G0[i]
                gv(G1, ub, p, t)
                for i in range(n):
                    ub[i] = u[i] - e * G0[i]
                gv(G2, ub, p, t)
                for i in range(n):
                    D[i] = (G1[i] - G2[i]) / (2.0 * e)
    for i in range(n):
        w = dW[i] if noise == DIAGONAL else dW[0]
        corr = w * w if strat else w * w - ha
        unew[i] = u[i] + hs * F0[i] + G0[i] * w + 0.5 * D[i] * corr
    return nf


@njit(cache=False)
def _step_sri(f, gv, tab, nerr, delta, noise, u, p, t, hs, dW, dZ, unew, err, wk, chi):
    """Rößler SRI stochastic Runge-Kutta (diagonal or scalar noise), tableau ``tab``;
    writes the embedded error terms delta*|E1| + |E2| into ``err``."""
    n = u.size
    s = tab.shape[0]
    m = dW.size
    ha = abs(hs)
    sq = np.sqrt(ha)
    for j in range(m):
        w = dW[j]
        chi[0, j] = (w * w - ha) / (2.0 * sq)
        chi[1, j] = 0.5 * (w + dZ[j] / SQRT3)
        chi[2, j] = (w * w * w - 3.0 * w * ha) / (6.0 * ha)
    # rows: H0 [0, s), H1 [s, 2s), F [2s, 3s), G [3s, 4s), E1 4s, E2 4s+1
    oA0 = 7
    oA1 = 7 + s
    oB0 = 7 + 2 * s
    oB1 = 7 + 3 * s
    for st in range(s):
        H0 = wk[st]
        H1 = wk[s + st]
        for i in range(n):
            a0 = 0.0
            a1 = 0.0
            b0 = 0.0
            b1 = 0.0
            for r in range(st):
                fr = wk[2 * s + r, i]
                gr = wk[3 * s + r, i]
                a0 += tab[st, oA0 + r] * fr
                a1 += tab[st, oA1 + r] * fr
                b0 += tab[st, oB0 + r] * gr
                b1 += tab[st, oB1 + r] * gr
            c2 = chi[1, i] if noise == DIAGONAL else chi[1, 0]
            H0[i] = u[i] + hs * a0 + c2 * b0
            H1[i] = u[i] + hs * a1 + sq * b1
        f(wk[2 * s + st], H0, p, t + tab[st, 0] * hs)
        gv(wk[3 * s + st], H1, p, t + tab[st, 1] * hs)
    for i in range(n):
        jj = i if noise == DIAGONAL else 0
        w = dW[jj]
        c1 = chi[0, jj]
        c2 = chi[1, jj]
        c3 = chi[2, jj]
        a = 0.0
        b = 0.0
        e1 = 0.0
        e2 = 0.0
        for st in range(s):
            fs = wk[2 * s + st, i]
            gs = wk[3 * s + st, i]
            a += tab[st, 2] * fs
            b += (tab[st, 3] * w + tab[st, 4] * c1) * gs
            e2 += (tab[st, 5] * c2 + tab[st, 6] * c3) * gs
            if st < nerr:
                e1 += fs
        unew[i] = u[i] + hs * a + b + e2
        err[i] = delta * abs(hs * e1) + abs(e2)
    return s


@njit(cache=False)
def _step_sra(f, gv, gm, tab, delta, noise, u, p, t, hs, dW, dZ, unew, err, wk, gk, chi):
    """Rößler SRA stochastic Runge-Kutta for additive noise (g independent of u),
    any noise kind; error terms delta*|E1| + |E2| into ``err``."""
    n = u.size
    s = tab.shape[0]
    m = dW.size
    for j in range(m):
        chi[1, j] = 0.5 * (dW[j] + dZ[j] / SQRT3)
    c2v = chi[1]
    oA0 = 7
    oB0 = 7 + 2 * s
    # rows: H0 [0, s), F [s, 2s), G [2s, 3s) (diagonal/scalar; general: gk[st])
    for st in range(s):
        H0 = wk[st]
        for i in range(n):
            a0 = 0.0
            b0 = 0.0
            for r in range(st):
                a0 += tab[st, oA0 + r] * wk[s + r, i]
                cb = tab[st, oB0 + r]
                if cb != 0.0:
                    b0 += cb * _gx(noise, wk[2 * s + r], gk[r], c2v, i)
            H0[i] = u[i] + hs * a0 + b0
        f(wk[s + st], H0, p, t + tab[st, 0] * hs)
        _geval(noise, gv, gm, wk[2 * s + st], gk[st], H0, p, t + tab[st, 1] * hs)
    for i in range(n):
        a = 0.0
        b = 0.0
        e1 = 0.0
        e2 = 0.0
        for st in range(s):
            fs = wk[s + st, i]
            a += tab[st, 2] * fs
            e1 += fs
            if tab[st, 3] != 0.0:
                b += tab[st, 3] * _gx(noise, wk[2 * s + st], gk[st], dW, i)
            if tab[st, 4] != 0.0:
                e2 += tab[st, 4] * _gx(noise, wk[2 * s + st], gk[st], c2v, i)
        unew[i] = u[i] + hs * a + b + e2
        err[i] = delta * abs(hs * e1) + abs(e2)
    return s


# ----------------------------------------------------------------------------- one path
@njit(cache=False)
def _save(k, x, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise):
    out_t[k] = t0 + span * x if x < 1.0 else t0 + span
    for i in range(u.size):
        out_u[k, i] = u[i]
    if save_noise:
        for j in range(m):
            out_W[k, j] = sqT * Bcur[j]


@njit(cache=False)
def propose_x(x, h, T, maxdepth):
    """End point of the next adaptive trial step from ``x`` with proposed length ``h``:
    rounded down onto a dyadic time (granularity 1/8 of the step), so that the Brownian
    tree answers from shallow, shared nodes; 1 when close to the end."""
    dx = h / T
    if dx >= 1.0 - x or (1.0 - x - dx) * T < 1e-12 * max(1.0, T):
        return 1.0
    q = np.int64(np.ceil(-np.log2(dx))) + 3
    if q > maxdepth:
        q = maxdepth
    sc = 2.0 ** q
    kq = np.floor(dx * sc)
    if kq < 1.0:
        kq = 1.0
    xt = x + kq / sc
    if xt >= 1.0:
        xt = 1.0
    return xt


@njit(cache=False)
def control_step(en, finite, hs, h, errprev, clamped, fpar):
    """Accept or reject an adaptive trial step of signed length ``hs`` with error norm
    ``en``; returns (accepted, next proposed |h|, errprev, retcode): the retcode is
    ``DTLESSTHANMIN`` (``UNSTABLE`` for a non-finite trial) when a rejected step would
    go below dtmin, and ``DTLESSTHANMIN`` with ``accepted`` True when the controller
    shrinks an accepted step below a user ``dtmin`` (``fpar[3] > 0``; the caller keeps the
    step and stops unless it reached t1).  A step clamped onto a save time does not
    shrink the proposal and never stops the solve."""
    dtmin = fpar[3]
    safety = fpar[5]
    qmin = fpar[6]
    qmax = fpar[7]
    beta1 = fpar[8]
    beta2 = fpar[9]
    if not (en <= 1.0):
        h = abs(hs) * reject_factor(en, beta1, safety, qmin)
        hmin = dtmin if dtmin > 0.0 else 1e-14 * max(1.0, abs(fpar[0]), abs(fpar[1]))
        if h < hmin:
            return False, h, errprev, (DTLESSTHANMIN if finite else UNSTABLE)
        return False, h, errprev, SUCCESS
    fac = pi_factor(en, errprev, beta1, beta2, safety, qmin, qmax)
    errprev = max(en, 1e-4)
    if not clamped:
        h = abs(hs) * fac
        if fac < 1.0 and h < dtmin:
            # accepted, but the controller shrinks the steps below a user dtmin
            return True, h, errprev, DTLESSTHANMIN
    else:
        h = max(h, abs(hs) * fac)
    return True, h, errprev, SUCCESS


@njit(cache=True)
def integrate_path(f, gv, gm, gc, tab, u0, p, atol, rtol, xs, fpar, ipar, seed, traj,
                   out_t, out_u, out_W, stats):
    """Integrate one path from t0 to t1; the whole loop in one compiled call.

    Saves every step (``save_every``) or at the normalised times ``xs``; writes
    stats = [nsaved, retcode, nf, ng, naccept, nreject].  A failed path with save times
    and a spare row (``out_t.size > xs.size``) writes the state it stopped at there, when
    that is past the last save.  Returns nothing."""
    n = u0.size
    t0 = fpar[0]
    t1 = fpar[1]
    dtabs = fpar[2]
    xstep = fpar[4]
    delta = fpar[10]
    eps_cs = fpar[11]
    xend = fpar[12]      # normalised time of t1 (1 unless a fixed grid's tree reaches past it)
    method = ipar[0]
    noise = ipar[1]
    m = ipar[2]
    nerr = ipar[3]
    adaptive = ipar[4]
    maxiters = ipar[5]
    N = ipar[6]
    maxdepth = ipar[7]
    save_every = ipar[8]
    strat = ipar[9]
    has_cs = ipar[10]
    save_noise = ipar[11]
    mlog = ipar[12]      # N = 2^mlog dyadic grid with every save on it, else -1
    blev = ipar[13]      # block of 2^blev steps filled level by level (fast path), 0 = off
    cap = out_t.size
    nsave = xs.size

    span = t1 - t0
    T = abs(span)
    sqT = np.sqrt(T)
    two = method == SRI or method == SRA
    nc = 2 * m if two else m         # two: B and I (running integral) per component
    compid = np.empty(m, dtype=np.int64)
    for j in range(m):
        compid[j] = j
    if two:
        tf, ti = _levy_alloc(compid)
        levy_init(seed, traj, m, tf, ti)
    else:
        tf, ti = _tree_alloc(compid)
        tree_init(seed, traj, nc, tf, ti)
    Bcur = np.zeros(nc)
    OUT = LEVELS + 1
    fast = (not adaptive) and mlog >= 0 and blev > 0 and not two
    BS = 1 << blev if fast else 1
    bbuf = np.zeros((BS + 1, nc))
    dW = np.empty(m)
    dZ = np.zeros(m)

    s = tab.shape[0]
    wk = np.zeros((4 * s + 8, n))
    if noise == GENERAL:
        gk = np.zeros((s + 2, n, m))
    else:
        gk = np.zeros((s + 2, 1, 1))
    cwk = np.zeros((2, n if has_cs else 1), dtype=np.complex128)
    pc = np.zeros(p.size if has_cs else 1, dtype=np.complex128)
    if has_cs:
        for i in range(p.size):
            pc[i] = p[i]
    chi = np.zeros((3, m))
    F0 = wk[4 * s + 6]
    G0 = wk[4 * s + 7]
    GM0 = gk[s + 1]
    u = u0.copy()
    unew = np.empty(n)
    err = np.zeros(n)
    # the loop works on borrowed references (.borrow: the helpers' array arguments cost
    # no atomic reference counting); ``owners`` keeps the allocations live to the end
    owners = (compid, tf, ti, Bcur, bbuf, dW, dZ, wk, gk, cwk, pc, chi, u, unew, err)
    compid, tf, ti, Bcur, bbuf = borrow(compid), borrow(tf), borrow(ti), borrow(Bcur), borrow(bbuf)
    dW, dZ, wk, gk, cwk, pc, chi = (borrow(dW), borrow(dZ), borrow(wk), borrow(gk), borrow(cwk),
                                    borrow(pc), borrow(chi))
    u, unew, err = borrow(u), borrow(unew), borrow(err)
    F0 = wk[4 * s + 6]
    G0 = wk[4 * s + 7]
    GM0 = gk[s + 1]
    p, atol, rtol, xs, tab = borrow(p), borrow(atol), borrow(rtol), borrow(xs), borrow(tab)
    out_t, out_u, out_W, stats = borrow(out_t), borrow(out_u), borrow(out_W), borrow(stats)

    nsaved = 0
    ks = 0
    rc = SUCCESS
    nf = 0
    ng = 0
    nacc = 0
    nrej = 0
    # initial save
    if save_every:
        _save(0, 0.0, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise)
        nsaved = 1
    else:
        while ks < nsave and xs[ks] <= 0.0:
            _save(nsaved, 0.0, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise)
            nsaved += 1
            ks += 1

    x = 0.0
    h = dtabs
    errprev = 1.0
    k = 0            # grid index (fixed step)
    xg = xend if N <= 1 else xstep
    while x < xend:
        if nacc + nrej >= maxiters:
            rc = MAXITERS
            break
        # target of this step
        clamped = False
        if adaptive:
            xt = propose_x(x, h, T, maxdepth)
        else:
            xt = xg
        if (not save_every) and ks < nsave and xs[ks] < xt:
            xt = xs[ks]
            clamped = True
        if fast:
            # dyadic grid: the tree's nodes inside a block of BS steps, level by level
            # (the same keys and arithmetic as tree_query, so the same values)
            kb = k % BS
            if kb == 0:
                xe = (k + BS) * xstep          # a node: the tree spans 2^mlog steps
                tree_query(xe, maxdepth, seed, traj, nc, tf, ti)
                for j in range(nc):
                    bbuf[0, j] = Bcur[j]
                    bbuf[BS, j] = tf[OUT, j]
                d0 = mlog - blev
                node0 = (np.int64(1) << d0) + k // BS
                for lv in range(blev):
                    half = BS >> (lv + 1)
                    sd = 0.5 * np.sqrt(2.0 ** (-(d0 + lv)))
                    if lv == 0:
                        for j in range(nc):
                            z0, z1 = normal_pair(seed, traj, node0 >> 1, ti[LEVELS + 1, j],
                                                 STREAM_MID)
                            zz = z1 if (node0 & 1) else z0
                            bbuf[half, j] = 0.5 * (bbuf[0, j] + bbuf[BS, j]) + sd * zz
                        continue
                    for i in range(0, 1 << lv, 2):      # siblings (even, odd) share a pair
                        nu = (node0 << lv) + i
                        lo = i * 2 * half
                        for j in range(nc):
                            z0, z1 = normal_pair(seed, traj, nu >> 1, ti[LEVELS + 1, j], STREAM_MID)
                            bbuf[lo + half, j] = 0.5 * (bbuf[lo, j] + bbuf[lo + 2 * half, j]) + sd * z0
                            lo2 = lo + 2 * half
                            bbuf[lo2 + half, j] = (0.5 * (bbuf[lo2, j] + bbuf[lo2 + 2 * half, j])
                                                   + sd * z1)
            if k + 1 >= N and xend != N * xstep:
                tree_query(xend, maxdepth, seed, traj, nc, tf, ti)   # t1 off the nodes
            else:
                for j in range(nc):
                    tf[OUT, j] = bbuf[kb + 1, j]
        elif two:
            levy_query(xt, maxdepth, seed, traj, m, tf, ti)
        else:
            tree_query(xt, maxdepth, seed, traj, nc, tf, ti)
        for j in range(m):
            dW[j] = sqT * (tf[OUT, j] - Bcur[j])
        if two:
            # I_(1,0)/h of this very path; the steps read it as (dW + dZ/sqrt 3)/2
            dxs = xt - x
            for j in range(m):
                c2 = sqT * (tf[OUT, m + j] - Bcur[m + j] - dxs * Bcur[j]) / dxs
                dZ[j] = SQRT3 * (2.0 * c2 - dW[j])
        t = t0 + span * x
        hs = span * (xt - x)
        if method == EM:
            # inline (no helper calls with array arguments in the hottest loop)
            f(F0, u, p, t)
            if noise == GENERAL:
                gm(GM0, u, p, t)
                for i in range(n):
                    acc = 0.0
                    for j in range(m):
                        acc += GM0[i, j] * dW[j]
                    unew[i] = u[i] + hs * F0[i] + acc
            else:
                gv(G0, u, p, t)
                if noise == DIAGONAL:
                    for i in range(n):
                        unew[i] = u[i] + hs * F0[i] + G0[i] * dW[i]
                else:
                    for i in range(n):
                        unew[i] = u[i] + hs * F0[i] + G0[i] * dW[0]
            nf += 1
            ng += 1
        elif method == EULERHEUN:
            nf += _step_heun(f, gv, gm, noise, u, p, t, hs, dW, unew, wk, gk)
            ng += 2
        elif method == MILSTEIN:
            nf += _step_milstein(f, gv, gc, noise, u, p, pc, t, hs, dW, unew, wk, cwk,
                                 has_cs, strat, eps_cs, atol)
            ng += 1 + (n if (has_cs == 1 and noise == DIAGONAL) else (1 if has_cs else 2))
        elif method == SRI:
            nf += _step_sri(f, gv, tab, nerr, delta, noise, u, p, t, hs, dW, dZ, unew, err,
                            wk, chi)
            ng += s
        else:
            nf += _step_sra(f, gv, gm, tab, delta, noise, u, p, t, hs, dW, dZ, unew, err,
                            wk, gk, chi)
            ng += s
        finite = True
        for i in range(n):
            if not np.isfinite(unew[i]):
                finite = False
                break
        if adaptive:
            en = error_norm(err, u, unew, atol, rtol) if finite else np.inf
            acc, h, errprev, rc = control_step(en, finite, hs, h, errprev, clamped, fpar)
            if not acc:
                nrej += 1
                if rc != SUCCESS:
                    break
                continue
        elif not finite:
            rc = UNSTABLE
            break
        nacc += 1
        for i in range(n):
            u[i] = unew[i]
        for j in range(nc):
            Bcur[j] = tf[OUT, j]
        x = xt
        if not adaptive and x == xg:
            k += 1
            xg = xend if k >= N - 1 else (k + 1) * xstep
        if save_every:
            if nsaved >= cap:
                rc = FULL
                break
            _save(nsaved, x, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise)
            nsaved += 1
        else:
            while ks < nsave and xs[ks] <= x:
                _save(nsaved, x, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise)
                nsaved += 1
                ks += 1
        if rc != SUCCESS:       # an accepted step below dtmin (control_step)
            if x < xend:
                break
            rc = SUCCESS
    if rc != SUCCESS and not save_every and cap > nsave and (ks == 0 or xs[ks - 1] < x):
        # a failed path with save times: the state it stopped at, in the spare last row
        # (single paths allocate one; ensembles keep their fixed save times)
        _save(cap - 1, x, t0, span, u, Bcur, m, sqT, out_t, out_u, out_W, save_noise)
    stats[0] = nsaved
    stats[1] = rc
    stats[2] = nf
    stats[3] = ng
    stats[4] = nacc
    stats[5] = nrej
    keep_alive(owners)


# ----------------------------------------------------------------------------- ensembles
@njit(parallel=True, cache=True)
def ensemble_paths(f, gv, gm, gc, tab, u0s, ps, atol, rtol, xs, fpar, ipar, seed, traj0,
                   out_u, out_W, stats):
    """Paths 0..N-1 (trajectory keys traj0 + i), one per thread, saving into
    ``out_u`` (N, cap, n) and ``out_W`` (N, cap, m) or (N, 1, 1)."""
    N = out_u.shape[0]
    cap = out_u.shape[1]
    for i0 in prange(N):
        i = np.int64(i0)
        iu = i if u0s.shape[0] > 1 else np.int64(0)
        ip = i if ps.shape[0] > 1 else np.int64(0)
        tr = traj0 + np.uint64(i)
        ot = np.empty(cap)
        st = np.zeros(6, dtype=np.int64)
        integrate_path_inner(f, gv, gm, gc, tab, u0s[iu], ps[ip], atol, rtol, xs, fpar, ipar, seed,
                       tr, ot, out_u[i], out_W[i], st)
        for q in range(6):
            stats[i, q] = st[q]


@njit(parallel=True, cache=True)
def ensemble_moments(f, gv, gm, gc, tab, u0s, ps, atol, rtol, xs, fpar, ipar, seed, traj0,
                     N, block, mean, var, counts):
    """Streaming mean and (unbiased) variance at the save times over N paths, without
    storing paths.  Paths run in fixed blocks of ``block`` (one block per thread, Welford
    within a block), and blocks are merged in index order (Chan et al.), so the result
    does not depend on thread scheduling.  counts = [used paths, failed paths, nf, naccept,
    nreject]; failed paths (retcode not Success) are left out of the moments."""
    nsave = mean.shape[0]
    n = mean.shape[1]
    nblk = (N + block - 1) // block
    bmean = np.zeros((nblk, nsave, n))
    bm2 = np.zeros((nblk, nsave, n))
    bcnt = np.zeros(nblk, dtype=np.int64)
    bwork = np.zeros((nblk, 4), dtype=np.int64)
    for b0 in prange(nblk):
        b = np.int64(b0)
        ot = np.empty(nsave)
        ou = np.empty((nsave, n))
        ow = np.empty((1, 1))
        st = np.zeros(6, dtype=np.int64)
        c = 0
        for i in range(b * block, min(N, (b + 1) * block)):
            iu = i if u0s.shape[0] > 1 else np.int64(0)
            ip = i if ps.shape[0] > 1 else np.int64(0)
            tr = traj0 + np.uint64(i)
            integrate_path_inner(f, gv, gm, gc, tab, u0s[iu], ps[ip], atol, rtol, xs, fpar, ipar,
                           seed, tr, ot, ou, ow, st)
            c = moments_add_path(b, c, st, ou, bmean, bm2, bwork)
        bcnt[b] = c
    moments_merge(bmean, bm2, bcnt, bwork, mean, var, counts)


@njit(cache=False)
def moments_add_path(b, c, st, ou, bmean, bm2, bwork):
    """Add one path (saved states ``ou`` (nsave, n), loop stats ``st``) to block ``b``
    holding ``c`` paths: Welford's update, or a failed path counted and left out.  Returns
    the block's new count.  bwork[b] = [failed, nf, naccept, nreject]."""
    nsave = ou.shape[0]
    bwork[b, 1] += st[2]
    bwork[b, 2] += st[4]
    bwork[b, 3] += st[5]
    if st[1] != SUCCESS or st[0] != nsave:
        bwork[b, 0] += 1
        return c
    c += 1
    for k in range(nsave):
        for j in range(ou.shape[1]):
            xv = ou[k, j]
            d = xv - bmean[b, k, j]
            bmean[b, k, j] += d / c
            bm2[b, k, j] += d * (xv - bmean[b, k, j])
    return c


@njit(cache=False)
def moments_merge(bmean, bm2, bcnt, bwork, mean, var, counts):
    """Merge the blocks' means and sums of squares in block order (Chan, Golub, LeVeque,
    Am. Stat. 37 (1983)) into ``mean`` and the unbiased ``var``; counts = [used, failed,
    nf, naccept, nreject]."""
    nsave = mean.shape[0]
    n = mean.shape[1]
    tot = 0
    for k in range(nsave):
        for j in range(n):
            mean[k, j] = 0.0
            var[k, j] = 0.0
    for b in range(bcnt.size):
        cb = bcnt[b]
        counts[1] += bwork[b, 0]
        counts[2] += bwork[b, 1]
        counts[3] += bwork[b, 2]
        counts[4] += bwork[b, 3]
        if cb == 0:
            continue
        newtot = tot + cb
        for k in range(nsave):
            for j in range(n):
                d = bmean[b, k, j] - mean[k, j]
                mean[k, j] += d * cb / newtot
                var[k, j] += bm2[b, k, j] + d * d * tot * cb / newtot
        tot = newtot
    counts[0] = tot
    for k in range(nsave):
        for j in range(n):
            var[k, j] = var[k, j] / (tot - 1) if tot > 1 else np.nan


# Uncached twins for compiled callers: a cached function compiled while a callee taking
# first-class functions came from the disk cache is stored broken (tests/test_kernel_cache.py)
integrate_path_inner = njit(cache=False)(integrate_path.py_func)
