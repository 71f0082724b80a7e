"""Recover a conductivity field from noisy interior temperatures (inverse heat conduction).

    -div(kappa grad u_s) = f_s   on the unit square, u = 0 on the walls, s = 1..5 sources

Observations: u_s at interior sensors (every other cell), with 1 % Gaussian noise.
Unknown: m = log kappa on every cell (positivity for free).  Objective:

    J(m) = sum_s 0.5 * sum_sensors w (u_s(m) - d_s)^2  +  alpha/2 |grad m|^2

minimised by SciPy's L-BFGS-B; dJ/dkappa comes from ``js.gradient`` (one forward and one
adjoint CG + multigrid solve per source, implicit function theorem), times kappa for m.

Run:  python examples/conductivity_inverse.py [size] [noise]
"""
import sys

import numpy as np

from jitsolve.demos import conductivity


def main(size=48, noise=0.01):
    out = conductivity(size=size, noise=noise, seed=0, maxiter=60, progress=True)
    print(f"grid {size}x{size}, noise {noise:.1%}: {out['iterations']} L-BFGS-B iterations, "
          f"{out['nfev']} gradient evaluations, {out['wall_time']:.2f} s")
    print(f"relative error of kappa: initial guess {out['initial_error']:.3f} -> "
          f"recovered {out['relative_error']:.3f}")
    t, r = out["truth"], out["recovered"]
    i, j = np.unravel_index(np.argmax(t), t.shape)
    k, l = np.unravel_index(np.argmin(t), t.shape)
    print(f"peak kappa: true {t[i, j]:.2f}, recovered {r[i, j]:.2f}; "
          f"trough: true {t[k, l]:.2f}, recovered {r[k, l]:.2f}")
    assert out["relative_error"] < 0.6 * out["initial_error"], "kappa was not recovered"
    return out


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    main(int(args[0]) if args else 48, args[1] if len(args) > 1 else 0.01)
