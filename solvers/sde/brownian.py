"""The Brownian path of a solve, regenerated on demand (O(1) memory per value).

Every SDE solve draws its noise from a virtual Brownian tree over the normalised time
x = (t - t0)/(t1 - t0) keyed by (seed, trajectory, node, component) with Philox4x32-10
(see ``kernels.cpu.sde`` and ``kernels.cpu.philox``).  :func:`brownian_path` evaluates
the same W(t) = sqrt(|t1 - t0|) B(x) at any times, e.g. over a sub-interval in a reverse
pass, without storing the forward path.

The tree of an adaptive solve spans [t0, t1].  A fixed step dt reads the tree spanning
2^M steps of dt, 2^M the first power of two >= N = ceil((t1 - t0)/dt) (:func:`fixed_grid`):
[t0, t1] itself when (t1 - t0)/dt is a power of two, else a span reaching past t1.  So
every grid point t0 + k dt is an exact node of its tree, and the grids of dt and dt/2
(and dt/4, ...) read the same Brownian motion.  Off the nodes, values below
``maxdepth`` come from a Brownian bridge inside the leaf (exact in law; identical
between calls with the same ``maxdepth``).  The order-1.5 methods use a tree that also
carries the space-time Lévy area (``levy=True``), another path for the same seed.
"""
import math

import numpy as np

from ...kernels.cpu import sde as K

__all__ = ["brownian_path", "fixed_grid", "DEFAULT_MAXDEPTH"]

#: depth of the tree for adaptive steps and off-grid times (leaves of width 2^-50 of the span)
DEFAULT_MAXDEPTH = 50


def fixed_grid(T, dt):
    """The Brownian tree of a fixed step ``dt`` over a span of length ``T``.

    Returns ``(N, M, S, xend)``: N steps (the last one shorter when dt does not divide
    T), the grid points ``x_k = k 2^-M`` in the tree's normalised time, the tree's span
    S (``T`` when T/dt = 2^M; ``2^M T / N`` when dt divides T into N steps, so the grid
    ends on the node x_N = N 2^-M; ``2^M dt`` otherwise, with t1 at ``xend = T / S``
    inside the last step) and the normalised time ``xend`` of t1."""
    ratio = T / dt
    if ratio <= 1.0:
        return 1, 0, T, 1.0
    M = int(round(math.log2(ratio)))
    if abs(ratio - 2.0 ** M) <= 1e-9 * ratio:
        return 2 ** M, M, T, 1.0
    N = int(math.ceil(ratio * (1 - 1e-12)))
    M = int(math.ceil(math.log2(N)))
    if abs(ratio - N) <= 1e-9 * ratio:
        return N, M, T * 2.0 ** M / N, N * 2.0 ** -M
    S = dt * 2.0 ** M
    return N, M, S, T / S


def brownian_path(times, tspan, *, seed=0, trajectory=0, nbrownian=1,
                  maxdepth=DEFAULT_MAXDEPTH, levy=False, dt=None):
    """W at ``times`` (len, nbrownian) for the solve over ``tspan`` with ``seed``.

    ``levy=True`` regenerates the path of the order-1.5 methods (SRIW1, SRA1), whose tree
    carries the space-time Lévy area; ``dt`` that of a fixed-step solve with step dt
    (its tree may span past t1, :func:`fixed_grid`), None that of an adaptive one."""
    t0, t1 = float(tspan[0]), float(tspan[1])
    span = t1 - t0
    xend = 1.0
    if dt is not None:
        _N, M, S, xend = fixed_grid(abs(span), float(dt))
        span = math.copysign(S, span)
        maxdepth = max(int(maxdepth), M)
    ts = np.atleast_1d(np.asarray(times, dtype=np.float64))
    xs = np.clip((ts - t0) / span, 0.0, xend)
    if dt is not None:                      # grid times onto the tree's nodes exactly
        xstep = 2.0 ** -M
        kk = np.rint(xs / xstep)
        on = np.abs(xs - kk * xstep) <= 1e-9 * xstep
        xs = np.where(on, kk * xstep, xs)
    xs[np.isclose(ts, t1, rtol=0, atol=1e-14 * max(1.0, abs(t1)))] = xend
    comp = np.arange(nbrownian, dtype=np.int64)
    xs = np.ascontiguousarray(xs)
    if levy:
        out = np.empty((xs.size, 2 * nbrownian))
        K.levy_sample(xs, int(maxdepth), np.uint64(seed), np.uint64(trajectory), comp, out)
        out = out[:, :nbrownian]
    else:
        out = np.empty((xs.size, nbrownian))
        K.tree_sample(xs, int(maxdepth), np.uint64(seed), np.uint64(trajectory), comp, out)
    return np.sqrt(abs(span)) * out
