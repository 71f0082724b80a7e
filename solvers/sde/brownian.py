"""The Brownian path of a solve, regenerated on demand (O(1) memory per value).

Every SDE solve draws its noise from a virtual Brownian tree over the normalised time
x = (t - t0)/(t1 - t0) keyed by (seed, trajectory, node, component) with Philox4x32-10
(see ``kernels.cpu.sde`` and ``kernels.cpu.philox``).  :func:`brownian_path` evaluates
the same W(t) = sqrt(|t1 - t0|) B(x) at any times, e.g. over a sub-interval in a reverse
pass, without storing the forward path.

At the dyadic times t0 + k (t1 - t0) / 2^m (every grid point of a fixed step
dt = (t1 - t0) / 2^m) the values are exact tree nodes, identical for every step size
and every ``maxdepth`` >= m.  Off those times, values below ``maxdepth`` come from a
Brownian bridge inside the leaf (exact in law; identical between calls with the same
``maxdepth``).  The order-1.5 methods use a tree that also carries the space-time Lévy
area (``levy=True``), another path for the same seed.
"""
import numpy as np

from ...kernels.cpu import sde as K

__all__ = ["brownian_path", "DEFAULT_MAXDEPTH"]

#: depth of the tree for adaptive steps and off-grid times (leaves of width 2^-50 of the span)
DEFAULT_MAXDEPTH = 50


def brownian_path(times, tspan, *, seed=0, trajectory=0, nbrownian=1,
                  maxdepth=DEFAULT_MAXDEPTH, levy=False):
    """W at ``times`` (len, nbrownian) for the solve over ``tspan`` with ``seed``.

    ``levy=True`` regenerates the path of the order-1.5 methods (SRIW1, SRA1), whose tree
    carries the space-time Lévy area."""
    t0, t1 = float(tspan[0]), float(tspan[1])
    span = t1 - t0
    ts = np.atleast_1d(np.asarray(times, dtype=np.float64))
    xs = np.clip((ts - t0) / span, 0.0, 1.0)
    xs[np.isclose(ts, t1, rtol=0, atol=1e-14 * max(1.0, abs(t1)))] = 1.0
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
