"""Built-in inverse problems (``jitsolve demo NAME`` runs them from the command line).

``conductivity``: recover a conductivity field ``kappa`` on a 2-D grid from noisy interior
temperature observations of ``-div(kappa grad u) = f`` (several heat sources, Dirichlet
walls), by L-BFGS-B on the log-conductivity ``m = log kappa`` with Tikhonov (H1
seminorm) regularisation; each loss gradient costs one forward and one adjoint solve per
source with CG + geometric multigrid (``js.gradient``, implicit function theorem).
"""
import time

import numpy as np

__all__ = ["conductivity", "conductivity_truth"]


def conductivity_truth(g):
    """The true field: background 1, a conductive blob (x3) and a resistive one (x1/2)."""
    x, y = g.mesh()
    blob = np.exp(-((x - 0.33) ** 2 + (y - 0.62) ** 2) / (2 * 0.09 ** 2))
    dip = np.exp(-((x - 0.68) ** 2 + (y - 0.35) ** 2) / (2 * 0.11 ** 2))
    return np.exp(np.log(3.0) * blob - np.log(2.0) * dip)


def _sources(g):
    x, y = g.mesh()
    out = [np.ones(g.shape) * 10.0]
    for cx, cy in ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        out.append(200.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.08 ** 2)))
    return out


def _grad_sq(m, h):
    """0.5 * sum |grad m|^2 h^2 (Neumann, forward differences) and its gradient."""
    val = 0.0
    gr = np.zeros_like(m)
    for ax in range(m.ndim):
        d = np.diff(m, axis=ax)
        val += 0.5 * np.sum(d * d)
        pad_lo = [(0, 0)] * m.ndim
        pad_hi = [(0, 0)] * m.ndim
        pad_lo[ax] = (1, 0)
        pad_hi[ax] = (0, 1)
        gr += np.pad(d, pad_lo) - np.pad(d, pad_hi)
    return val, gr


def conductivity(size=48, noise=0.01, seed=0, maxiter=60, alpha=None, progress=False):
    """Recover ``kappa`` from noisy interior temperatures of ``-div(kappa grad u) = f``.

    Parameters
    ----------
    size : int
        Cells per side of the square grid (even; a power of two is best for multigrid).
    noise : float
        Relative Gaussian noise on the observations.
    seed : int
        Seed of the noise.
    maxiter : int
        L-BFGS-B iterations.
    alpha : float, optional
        Tikhonov weight of ``0.5 |grad log kappa|^2``; default scales with the noise.
    progress : bool
        Print the loss per iteration.

    Returns
    -------
    dict
        ``truth``, ``recovered``, ``initial`` (fields of the grid's shape); ``data`` (one
        observed temperature field per source, NaN away from the sensors) and ``mask``;
        ``loss_history`` (objective per L-BFGS-B iteration, the initial guess first);
        ``relative_error`` and ``initial_error`` (``||kappa - truth||_2 / ||truth||_2`` for
        the recovered field and for the initial guess kappa = 1); ``iterations``,
        ``nfev``, ``wall_time`` (s), ``message`` and the inputs.

    At the default size the recovery takes about 60 iterations and 7 s on two cores
    (warm Numba cache) and halves the relative error (0.27 -> 0.13).
    """
    import scipy.optimize as so

    import jitsolve as js

    t0 = time.perf_counter()
    g = js.Grid((size, size), bc=js.Dirichlet(0.0))
    truth = conductivity_truth(g)
    sources = _sources(g)
    rng = np.random.default_rng(seed)
    mask = np.zeros(g.shape)
    mask[2:-2:2, 2:-2:2] = 1.0        # interior sensors on every other cell
    alg = js.CG(js.Multigrid())
    solve_kw = dict(rtol=1e-10)
    data, losses = [], []
    for f in sources:
        u = js.solve(js.LinearProblem(-js.Diffusion(g, truth), f), alg, **solve_kw).u
        scale = np.sqrt(np.mean(u[mask > 0] ** 2))
        d = u + noise * scale * rng.standard_normal(g.shape)
        w = mask / (noise * scale + 1e-300) ** 2 / mask.sum()
        data.append(np.where(mask > 0, d, np.nan))
        losses.append(js.L2Loss(None, np.where(mask > 0, d, 0.0), weights=w))
    if alpha is None:
        alpha = 2e-3 * max(noise, 1e-3) / 0.01
    history = []

    def objective(m):
        m = m.reshape(g.shape)
        kappa = np.exp(m)
        A = -js.Diffusion(g, kappa)
        val, grad = 0.0, np.zeros(g.shape)
        for f, loss in zip(sources, losses):
            v, gr = js.gradient(js.LinearProblem(A, f), alg, loss, wrt=("kappa",), **solve_kw)
            val += v
            grad += gr["kappa"]
        reg, rgrad = _grad_sq(m, 1.0)
        val += alpha * reg
        grad = grad * kappa + alpha * rgrad     # chain rule d/dm = kappa d/dkappa
        return val, grad.ravel()

    def cb(m):
        history.append(objective_cache[0])
        if progress:
            err = np.linalg.norm(np.exp(m) - truth.ravel()) / np.linalg.norm(truth)
            print(f"iter {len(history):3d}  loss {history[-1]:.5e}  rel. error {err:.4f}", flush=True)

    objective_cache = [None]

    def fun(m):
        v, gr = objective(m)
        objective_cache[0] = v
        return v, gr

    m0 = np.zeros(g.size)
    history.append(fun(m0)[0])
    res = so.minimize(fun, m0, jac=True, method="L-BFGS-B", callback=cb,
                      options=dict(maxiter=maxiter, maxcor=20))
    rec = np.exp(res.x.reshape(g.shape))
    ones = np.ones(g.shape)
    rel = float(np.linalg.norm(rec - truth) / np.linalg.norm(truth))
    rel0 = float(np.linalg.norm(ones - truth) / np.linalg.norm(truth))
    return dict(truth=truth, recovered=rec, initial=ones, data=data, mask=mask,
                loss_history=np.array(history), relative_error=rel, initial_error=rel0,
                relative_error_definition="||kappa - truth||_2 / ||truth||_2",
                iterations=int(res.nit), nfev=int(res.nfev), wall_time=time.perf_counter() - t0,
                message=str(res.message), size=size, noise=noise, seed=seed, alpha=alpha)
