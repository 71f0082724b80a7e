"""The nonlinear heat figure of issues 6/7: jitsolve against a hand-written Numba adjoint.

    python perf/heat_nonlinear.py [--steps 1000] [--n 256] [--repeat 5] [--serial] [--vjp]
                                  [--fusion]

Heat equation on a 256x256 cell-centred grid (unit square, homogeneous Dirichlet) with a
reaction term, forward Euler with ``dt = r h^2``, ``r = 0.2``; per step

    u <- u + r L_h u + 0.05 (u - u^3)          (L_h: the 5-point stencil times h^2)

that is ``du/dt = L u + k (u - u^3)`` with ``L = js.Laplacian(grid)`` and ``k = 0.05 / dt``.
Loss ``0.5 ||u_T - d||^2`` after 1,000 steps; gradient with respect to ``u0``.

* hand-written: ``@njit(parallel=True, cache=True)`` step kernels (one fused pass per
  step, forward and reverse), every state stored, the exact reverse sweep
  ``lam <- lam + r L_h lam + 0.05 (1 - 3 u^2) lam``;
* jitsolve: ``js.SplitODEProblem(L, reaction, u0, tspan, p)`` with ``reaction`` an
  ``ODEFunction`` declaring its diagonal Jacobian (``jac_sparsity``), ``js.Euler()``,
  ``js.gradient(..., wrt="u0", dt=dt)`` with every state stored and with
  ``js.DiscreteAdjoint(checkpoints=16)``; the reaction is written as a competent user
  writes a grid kernel: ``@njit(parallel=True)`` with ``prange``; with ``--vjp`` also the
  reaction with its own ``vjp`` (``ODEFunction(reaction, vjp=reaction_vjp)``), the first
  of the adjoint's VJP sources; with ``--fusion`` also the forward solves (Euler, RK4,
  Tsit5 at fixed steps; ``--steps / 4`` steps) with the Laplacian (and a Diffusion
  operator, kappa in [0.5, 1]) folded into the stage combinations (the default,
  ``kernels/cpu/erk_large_stencil.py``) against its own threaded pass (the fusion
  switched off for the A/B run), and their gradients.

A store-all gradient takes its buffer of every state (0.5 GB here) from the solvers' work
pool and gives it back, so repeated calls skip the buffer's first-touch page faults; the
hand-written gradient allocates its array per call, as a plain implementation does.  Also
timed, for a like-for-like reading: the hand-written gradient with one array kept from
call to call, and jitsolve's first call with the pool emptied before it.

Times are the best of ``--repeat`` interleaved rounds after a warm-up, all in one process
(the machine is shared: compare ratios, not absolute times); peak extra memory is traced with
``tracemalloc`` (Numba's allocations are traced too: its runtime allocates through
NumPy's allocator hooks), as ``perf/ode_figures.py`` does.
Issue targets: jitsolve's gradient within 1.3x of the hand-written adjoint, and with 16
checkpoints under 30 MB of extra memory.
"""
import argparse
import time
import tracemalloc

import numpy as np
from numba import njit, prange

R = 0.2        # dt / h^2
C = 0.05       # reaction increment per step: dt * k


# ---------------------------------------------------------------------- hand-written
@njit(parallel=True, cache=True)
def hw_step(u, out, r, c):
    """``out = u + r * L_h u + c * (u - u^3)``; ghost cells ``-u`` (homogeneous Dirichlet
    on a cell-centred grid).  Boundary columns peeled so the inner loop vectorises."""
    n0, n1 = u.shape
    for i in prange(n0):
        um = u[i - 1] if i > 0 else u[i]
        up = u[i + 1] if i < n0 - 1 else u[i]
        sm = 1.0 if i > 0 else -1.0
        sp = 1.0 if i < n0 - 1 else -1.0
        ui = u[i]
        oi = out[i]
        for j in range(1, n1 - 1):
            x = ui[j]
            lap = sm * um[j] + sp * up[j] + ui[j - 1] + ui[j + 1] - 4.0 * x
            oi[j] = x + r * lap + c * (x - x * x * x)
        for j in (0, n1 - 1):
            x = ui[j]
            left = ui[j - 1] if j > 0 else -x
            right = ui[j + 1] if j < n1 - 1 else -x
            lap = sm * um[j] + sp * up[j] + left + right - 4.0 * x
            oi[j] = x + r * lap + c * (x - x * x * x)


@njit(parallel=True, cache=True)
def hw_adjoint_step(lam, u, out, r, c):
    """``out = lam + r * L_h lam + c * (1 - 3 u^2) * lam`` (``L_h`` is symmetric)."""
    n0, n1 = lam.shape
    for i in prange(n0):
        lm = lam[i - 1] if i > 0 else lam[i]
        lp = lam[i + 1] if i < n0 - 1 else lam[i]
        sm = 1.0 if i > 0 else -1.0
        sp = 1.0 if i < n0 - 1 else -1.0
        li = lam[i]
        ui = u[i]
        oi = out[i]
        for j in range(1, n1 - 1):
            x = li[j]
            lap = sm * lm[j] + sp * lp[j] + li[j - 1] + li[j + 1] - 4.0 * x
            v = ui[j]
            oi[j] = x + r * lap + c * (1.0 - 3.0 * v * v) * x
        for j in (0, n1 - 1):
            x = li[j]
            left = li[j - 1] if j > 0 else -x
            right = li[j + 1] if j < n1 - 1 else -x
            lap = sm * lm[j] + sp * lp[j] + left + right - 4.0 * x
            v = ui[j]
            oi[j] = x + r * lap + c * (1.0 - 3.0 * v * v) * x


@njit(cache=True)
def hw_forward(u0, states, r, c):
    """Every state into ``states`` (``states[0] = u0``)."""
    states[0] = u0
    for k in range(states.shape[0] - 1):
        hw_step(states[k], states[k + 1], r, c)


@njit(cache=True)
def hw_forward_only(u0, nsteps, r, c):
    """The forward solve alone (two buffers), returns ``u_T``."""
    a = u0.copy()
    b = np.empty_like(u0)
    for k in range(nsteps):
        hw_step(a, b, r, c)
        a, b = b, a
    return a


@njit(cache=True)
def hw_reverse(states, lam, r, c):
    """Reverse sweep from ``lam = dJ/du_T`` to ``dJ/du0`` (returned)."""
    a = lam.copy()
    b = np.empty_like(lam)
    for k in range(states.shape[0] - 2, -1, -1):
        hw_adjoint_step(a, states[k], b, r, c)
        a, b = b, a
    return a


def hw_gradient(u0, d, nsteps, states=None):
    """``(J, dJ/du0)`` of ``J = 0.5 ||u_T - d||^2``, every state stored (in ``states``
    when given: a buffer kept from call to call, else a fresh array)."""
    if states is None:
        states = np.empty((nsteps + 1,) + u0.shape)
    hw_forward(u0, states, R, C)
    res = states[-1] - d
    return 0.5 * float(np.sum(res * res)), hw_reverse(states, res, R, C)


# ---------------------------------------------------------------------- jitsolve
@njit(parallel=True)
def reaction(du, u, p, t):
    """``du = k (u - u^3)`` with ``k = p[0]`` (powers as products: complex-step exact)."""
    k = p[0]
    for i in prange(u.size):
        x = u[i]
        du[i] = k * (x - x * x * x)


@njit(parallel=True)
def reaction_vjp(ou, op, lam, u, p, t):
    """The reaction's own VJP (``ODEFunction(vjp=...)``): ``ou = k (1 - 3u^2) lam``,
    ``op = sum (u - u^3) lam``."""
    k = p[0]
    acc = 0.0
    for i in prange(u.size):
        x = u[i]
        ou[i] = k * (1.0 - 3.0 * x * x) * lam[i]
        acc += (x - x * x * x) * lam[i]
    op[0] = acc


@njit
def reaction_serial(du, u, p, t):
    k = p[0]
    for i in range(u.size):
        x = u[i]
        du[i] = k * (x - x * x * x)


def interleaved_best(cases, rep):
    """Best time of each case over ``rep`` rounds; every round runs every case once, so a
    burst of load from elsewhere on the machine hits all cases alike.  A case is a
    callable or ``(setup, fn)``: ``setup()`` runs untimed before each timed ``fn()``."""
    best = {k: np.inf for k in cases}
    for _ in range(rep):
        for k, case in cases.items():
            setup, fn = case if isinstance(case, tuple) else (None, case)
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return fh.read().split()[0]
    except OSError:  # pragma: no cover - not Linux
        return "?"


def peak_traced(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--serial", action="store_true",
                    help="also time a reaction written without prange")
    ap.add_argument("--vjp", action="store_true",
                    help="also time the reaction with its own vjp (ODEFunction(vjp=...))")
    ap.add_argument("--fusion", action="store_true",
                    help="also time forward solves and gradients with the grid operator "
                         "folded into the stage combinations and without")
    a = ap.parse_args(argv)
    import scipy.sparse as sp

    import jitsolve as js
    import numba
    from jitsolve.solvers import workspace

    g = js.Grid((a.n, a.n), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    rng = np.random.default_rng(0)
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y) + 0.1 * rng.standard_normal(g.shape)
    d = 0.5 * np.sin(np.pi * x) * np.sin(2 * np.pi * y)
    h = min(g.spacing)
    dt = R * h * h
    N = a.steps
    T = N * dt
    k = C / dt

    # the hand-written stencil is js.Laplacian's discretisation
    v = rng.standard_normal(g.shape)
    out = np.empty_like(v)
    hw_step(v, out, R, 0.0)
    err = np.abs((out - v) - dt * L.apply(v)).max() / np.abs(out - v).max()
    assert err < 1e-12, err

    F = js.ODEFunction(reaction, jac_sparsity=sp.identity(g.size, format="csr"))
    prob = js.SplitODEProblem(L, F, u0, (0.0, T), np.array([k]))
    loss = js.L2Loss([T], d[None])
    alg = js.Euler()
    c16 = js.DiscreteAdjoint(checkpoints=16)

    # warm-up (compiles or loads every kernel), then the gradients agree
    J_hw, g_hw = hw_gradient(u0, d, N)
    hw_forward_only(u0, N, R, C)
    js.solve(prob, alg, dt=dt, saveat=[T])
    J_js, gr = js.gradient(prob, alg, loss, wrt="u0", dt=dt)
    _, gr16 = js.gradient(prob, alg, loss, wrt="u0", dt=dt, sensealg=c16)
    rel = np.abs(gr["u0"] - g_hw).max() / np.abs(g_hw).max()
    rel16 = np.abs(gr16["u0"] - g_hw).max() / np.abs(g_hw).max()
    print(f"threads {numba.get_num_threads()} ({numba.threading_layer()}); grid {a.n}x{a.n}, "
          f"{N} Euler steps, dt = {dt:.3e}, k = {k:.4g}")
    print(f"loss: hand-written {J_hw:.15e}, jitsolve {J_js:.15e} "
          f"(rel. diff {abs(J_js - J_hw) / abs(J_hw):.1e})")
    print(f"gradient wrt u0, max rel. diff to hand-written: store-all {rel:.1e}, "
          f"16 checkpoints {rel16:.1e}; bit-for-bit store-all == 16 checkpoints: "
          f"{np.array_equal(gr['u0'], gr16['u0'])}")
    assert rel < 1e-10 and rel16 < 1e-10

    hw_states = np.empty((N + 1,) + u0.shape)
    hw_gradient(u0, d, N, hw_states)
    cases = {
        "hw_fwd": lambda: hw_forward_only(u0, N, R, C),
        "hw": lambda: hw_gradient(u0, d, N),
        "hw_kept": lambda: hw_gradient(u0, d, N, hw_states),
        "fwd": lambda: js.solve(prob, alg, dt=dt, saveat=[T]),
        "all": lambda: js.gradient(prob, alg, loss, wrt="u0", dt=dt),
        "all_first": (workspace.clear, lambda: js.gradient(prob, alg, loss, wrt="u0", dt=dt)),
        "c16": lambda: js.gradient(prob, alg, loss, wrt="u0", dt=dt, sensealg=c16),
    }
    if a.serial:
        Fs = js.ODEFunction(reaction_serial, jac_sparsity=sp.identity(g.size, format="csr"))
        ps = js.remake(prob, f=Fs)
        js.solve(ps, alg, dt=dt, saveat=[T])
        js.gradient(ps, alg, loss, wrt="u0", dt=dt)
        cases["sf"] = lambda: js.solve(ps, alg, dt=dt, saveat=[T])
        cases["sg"] = lambda: js.gradient(ps, alg, loss, wrt="u0", dt=dt)
    if a.vjp:
        pv = js.remake(prob, f=js.ODEFunction(reaction, vjp=reaction_vjp))
        _, grv = js.gradient(pv, alg, loss, wrt="u0", dt=dt)
        relv = np.abs(grv["u0"] - g_hw).max() / np.abs(g_hw).max()
        print(f"gradient with the user's vjp, max rel. diff to hand-written: {relv:.1e}")
        assert relv < 1e-10
        cases["vg"] = lambda: js.gradient(pv, alg, loss, wrt="u0", dt=dt)
        cases["v16"] = lambda: js.gradient(pv, alg, loss, wrt="u0", dt=dt, sensealg=c16)
    load0 = loadavg()
    b = interleaved_best(cases, a.repeat)
    load1 = loadavg()
    t_hw_fwd, t_hw, t_fwd, t_all, t_c16 = b["hw_fwd"], b["hw"], b["fwd"], b["all"], b["c16"]
    t_hw_kept, t_first = b["hw_kept"], b["all_first"]
    rows = []
    if a.serial:
        rows = [("jitsolve forward, serial reaction", b["sf"], t_hw_fwd),
                ("jitsolve gradient, serial reaction, store-all", b["sg"], t_hw)]

    if a.vjp:
        rows += [("jitsolve gradient, reaction with its own vjp, store-all", b["vg"], t_hw),
                 ("jitsolve gradient, reaction with its own vjp, 16 checkpoints", b["v16"], t_hw)]

    state = g.size * 8
    m_hw = peak_traced(lambda: hw_gradient(u0, d, N))
    workspace.clear()       # the state buffer allocated inside the trace, not lent from the pool
    m_all = peak_traced(lambda: js.gradient(prob, alg, loss, wrt="u0", dt=dt))
    m_c16 = peak_traced(lambda: js.gradient(prob, alg, loss, wrt="u0", dt=dt, sensealg=c16))

    print()
    print(f"best of {a.repeat} interleaved rounds; 1-minute load average {load0} before, "
          f"{load1} after (2 cores: above ~0.5 another process shares them)")
    print("| run | time (ms) | ratio | to |")
    print("|---|---:|---:|---|")
    print(f"| hand-written forward (fused Numba step) | {t_hw_fwd * 1e3:.1f} | 1.00 | itself |")
    print(f"| hand-written gradient (forward storing every state + reverse) | {t_hw * 1e3:.1f} "
          f"| 1.00 | itself |")
    print(f"| jitsolve forward `js.solve(..., Euler(), saveat=[T])` | {t_fwd * 1e3:.1f} | "
          f"{t_fwd / t_hw_fwd:.2f} | hand-written forward |")
    print(f"| hand-written gradient, its state array allocated once and reused | "
          f"{t_hw_kept * 1e3:.1f} | {t_hw_kept / t_hw:.2f} | hand-written gradient |")
    print(f"| jitsolve gradient, store-all (state buffer from the pool) | {t_all * 1e3:.1f} | "
          f"**{t_all / t_hw:.2f}** | hand-written gradient |")
    print(f"| jitsolve gradient, store-all, like for like | {t_all * 1e3:.1f} | "
          f"{t_all / t_hw_kept:.2f} | hand-written gradient, array reused |")
    print(f"| jitsolve gradient, store-all, first call (pool emptied before) | "
          f"{t_first * 1e3:.1f} | {t_first / t_hw:.2f} | hand-written gradient |")
    print(f"| jitsolve gradient, 16 checkpoints | {t_c16 * 1e3:.1f} | {t_c16 / t_hw:.2f} | "
          f"hand-written gradient |")
    for name, t, ref in rows:
        print(f"| {name} | {t * 1e3:.1f} | {t / ref:.2f} | hand-written "
              f"{'forward' if 'forward' in name else 'gradient'} |")
    print()
    print(f"peak traced memory (one state = {state / 2**20:.2f} MiB): hand-written "
          f"{m_hw / 2**20:.0f} MiB, jitsolve store-all {m_all / 2**20:.0f} MiB, "
          f"16 checkpoints {m_c16 / 2**20:.1f} MiB ({m_c16 / state:.1f} states; "
          f"target < 30 MB: {'met' if m_c16 < 30e6 else 'NOT met'})")
    ok = t_all <= 1.3 * t_hw
    ok_like = t_all <= 1.3 * t_hw_kept
    print(f"gradient within 1.3x of the hand-written adjoint (a fresh state array per call): "
          f"{'met' if ok else 'NOT met'} ({t_all / t_hw:.2f}x store-all, {t_c16 / t_hw:.2f}x "
          f"with 16 checkpoints; a first call with an empty pool {t_first / t_hw:.2f}x)")
    print(f"like for like, both keeping their state array from call to call: "
          f"{'met' if ok_like else 'NOT met'} ({t_all / t_hw_kept:.2f}x)")
    if a.fusion:
        fusion_ab(prob, dt, max(1, N // 4), a.repeat)


def fusion_ab(prob, dt, nsteps, repeat):
    """Forward solves and gradients with the grid operator folded into the stage
    combinations and without (``is_packed_stencil`` answering False turns the kernels'
    ``fuse_lin`` off); states and gradients must agree bit for bit."""
    import jitsolve as js
    from jitsolve.kernels.cpu import rhs_grid
    T = nsteps * dt
    g = prob.L.grid
    kappa = np.random.default_rng(1).uniform(0.5, 1.0, g.shape)
    probs = {"Laplacian": js.remake(prob, tspan=(0.0, T)),
             "Diffusion": js.remake(prob, tspan=(0.0, T), L=js.Diffusion(g, kappa))}
    real = rhs_grid.is_packed_stencil
    algs = {"Euler": (js.Euler(), {}), "RK4": (js.RK4(), {}),
            "Tsit5": (js.Tsit5(), {"adaptive": False})}
    loss = js.L2Loss([T], np.zeros((1,) + g.shape))

    def run(p, alg, kw, fused, grad):
        rhs_grid.is_packed_stencil = real if fused else (lambda lin: False)
        try:
            if grad:
                return js.gradient(p, alg, loss, wrt="u0", dt=dt, **kw)[1]["u0"]
            return js.solve(p, alg, dt=dt, saveat=[T], **kw).u
        finally:
            rhs_grid.is_packed_stencil = real

    for opname, p in probs.items():
        cases = {}
        for name, (alg, kw) in algs.items():
            for grad in (False, True):
                assert np.array_equal(run(p, alg, kw, True, grad), run(p, alg, kw, False, grad))
                for fused in (True, False):
                    cases[(name, grad, fused)] = (lambda alg=alg, kw=kw, fused=fused, grad=grad,
                                                  p=p: run(p, alg, kw, fused, grad))
        b = interleaved_best(cases, repeat)
        print()
        print(f"{opname}: {nsteps} fixed steps, the operator folded into the stage "
              f"combinations or in a pass of its own (same states and gradients bit for bit; "
              f"best of {repeat})")
        print("| method | forward fused (ms) | own pass (ms) | ratio | gradient (store-all) "
              "fused (ms) | own pass (ms) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in algs:
            f1, f0 = b[(name, False, True)], b[(name, False, False)]
            g1, g0 = b[(name, True, True)], b[(name, True, False)]
            print(f"| {name} | {f1 * 1e3:.1f} | {f0 * 1e3:.1f} | {f1 / f0:.2f} | "
                  f"{g1 * 1e3:.1f} | {g0 * 1e3:.1f} | {g1 / g0:.2f} |")


if __name__ == "__main__":
    main()
