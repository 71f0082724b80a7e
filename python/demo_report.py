"""Reporting for the worked inverse problems (``jitsolve demo``): summary text, HDF5, figure.

A demo returns a dict with at least ``truth``, ``recovered`` (arrays of the same shape),
``data`` (the noisy observations: an array, or a list of arrays, NaN where unobserved),
``loss_history`` (loss per optimizer iteration), ``relative_error`` and ``iterations``;
anything else that is an array or a number is written to the HDF5 file too.
"""
import numpy as np

__all__ = ["summary", "save_result", "plot_result"]


def _history(res):
    return np.asarray(res.get("loss_history", res.get("history", [])), dtype=float)


def summary(res, wall):
    """A short, human-readable report of a demo run."""
    hist = _history(res)
    start = (f" (the initial guess had {res['initial_error']:.3g})" if "initial_error" in res else "")
    lines = [f"demo: {res.get('name', 'inverse problem')}",
             f"  recovered field: relative L2 error {res['relative_error']:.3g}{start}"
             + (f", data noise {res['noise']:.3g}" if "noise" in res else ""),
             f"  optimizer: {res['iterations']} iterations, loss {hist[0]:.4g} -> {hist[-1]:.4g}"
             if hist.size else "",
             f"  wall time: {wall:.2f} s"]
    if "grad_check" in res:
        lines.append(f"  gradient check: {res['grad_check']}")
    return "\n".join(line for line in lines if line)


def save_result(res, path):
    """Write the demo's arrays and scalars to ``path`` (HDF5, format ``jitsolve-demo``)."""
    import h5py

    from . import __version__
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "jitsolve-demo"
        f.attrs["jitsolve_version"] = __version__
        for k, v in res.items():
            if isinstance(v, (int, float, np.integer, np.floating, str)):
                f.attrs[k] = v
            elif isinstance(v, (np.ndarray, list, tuple)):
                try:
                    a = np.asarray(v)
                except ValueError:   # ragged
                    continue
                if a.dtype.kind in "fiub":
                    f.create_dataset(k, data=a)


def plot_result(res, path):
    """Truth / data / recovered / error and the loss curve as a PNG; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    truth, rec = np.asarray(res["truth"]), np.asarray(res["recovered"])
    data = res["data"]
    data = np.asarray(data[0] if isinstance(data, (list, tuple)) else data)
    fig, axes = plt.subplots(1, 5, figsize=(20, 4), constrained_layout=True)
    vmin, vmax = float(min(truth.min(), rec.min())), float(max(truth.max(), rec.max()))
    panels = [("truth", truth, dict(vmin=vmin, vmax=vmax)),
              ("data (noisy observations, first experiment)", data, {}),
              ("recovered", rec, dict(vmin=vmin, vmax=vmax)),
              ("error (recovered - truth)", rec - truth, dict(cmap="RdBu_r"))]
    for ax, (title, field, kw) in zip(axes[:4], panels):
        if field.ndim == 2:
            im = ax.imshow(np.ma.masked_invalid(field).T, origin="lower", **kw)
            fig.colorbar(im, ax=ax, shrink=0.8)
        else:
            ax.plot(np.ravel(field))
        ax.set_title(title)
    hist = _history(res)
    axes[4].semilogy(np.arange(hist.size), hist)
    axes[4].set_xlabel("iteration")
    axes[4].set_title("loss")
    fig.suptitle(f"{res.get('name', 'jitsolve demo')}: relative error {res['relative_error']:.3g}")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
