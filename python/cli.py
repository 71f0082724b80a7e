"""The ``jitsolve`` command line (also ``python -m jitsolve``).

Errors in arguments print one line and exit with status 2, never a traceback.
"""
import argparse
import os
import platform
import sys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"jitsolve: error: {message}\n")


def _info(args):
    import numpy
    import scipy
    from . import __version__
    lines = [f"jitsolve {__version__}", f"python {platform.python_version()} ({sys.executable})",
             f"numpy {numpy.__version__}, scipy {scipy.__version__}"]
    try:
        import numba
        from numba.np.ufunc import parallel as _par  # noqa: F401
        lines.append(f"numba {numba.__version__}, threads {numba.config.NUMBA_NUM_THREADS}, "
                     f"threading layer {numba.config.THREADING_LAYER}")
        cache = os.environ.get("NUMBA_CACHE_DIR") or "(next to the sources, in __pycache__)"
        lines.append(f"numba cache dir: {cache}")
    except ImportError as exc:  # pragma: no cover
        lines.append(f"numba: not importable ({exc})")
    try:
        import h5py
        lines.append(f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})")
    except ImportError:
        lines.append("h5py: not installed")
    try:
        import pyamg
        lines.append(f"pyamg {pyamg.__version__}")
    except ImportError:
        lines.append("pyamg: not installed")
    lines.append(f"cuda: {_cuda_status()}")
    try:
        import mpi4py
        lines.append(f"mpi: mpi4py {mpi4py.__version__} (jitsolve's MPI backend is not built yet)")
    except ImportError:
        lines.append("mpi: mpi4py not installed")
    print("\n".join(lines))
    return 0


def _cuda_status():
    try:
        from numba import cuda
    except ImportError as exc:
        return f"unavailable (numba.cuda not importable: {exc})"
    try:
        if not cuda.is_available():
            return "unavailable (no CUDA driver or device found)"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return f"{name} (jitsolve's CUDA backend is not built yet)"
    except Exception as exc:  # driver errors
        return f"unavailable ({exc})"


#: demo name -> (function in jitsolve.demos, what it needs when missing)
DEMOS = {
    "conductivity": ("conductivity", None),
    "heat-inverse": ("heat_inverse", None),
    "lotka-volterra": ("lotka_volterra", None),
    "sde-calibration": ("sde_calibration", None),
}
DEFAULT_DEMO = "heat-inverse"


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def _demo(args):
    import time

    import numpy as np

    from .errors import BackendUnavailableError, InvalidProblemError, UnsupportedAlgorithmError
    fname, missing = DEMOS[args.name]
    if fname is None:
        raise UnsupportedAlgorithmError(f"demo {args.name!r} needs {missing}, not built yet; "
                                        f"available: {', '.join(n for n, (f, _) in DEMOS.items() if f)}")
    if args.backend != "cpu":
        raise BackendUnavailableError(f"--backend: {args.backend!r} is not built yet; use cpu")
    if not os.path.isdir(args.out):
        os.makedirs(args.out, exist_ok=True)
    from . import demo_report, demos
    import inspect
    fn = getattr(demos, fname)
    accepted = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in ("size", "steps", "noise", "maxiter")
              if getattr(args, k) is not None}
    for k in kwargs:
        if k not in accepted:
            raise InvalidProblemError(f"--{k}: the {args.name} demo has no such option")
    t0 = time.perf_counter()
    res = fn(seed=args.seed, progress=not args.quiet, **kwargs)
    res.setdefault("name", args.name)
    wall = time.perf_counter() - t0
    h5 = os.path.join(args.out, "result.h5")
    demo_report.save_result(res, h5)
    png = os.path.join(args.out, "result.png")
    plotter = getattr(demos, f"plot_{fname}", demo_report.plot_result)
    png = png if plotter(res, png) else None
    print(demo_report.summary(res, wall))
    print(f"wrote {h5}" + (f" and {png}" if png else " (install matplotlib for a figure: pip install 'jitsolve[plot]')"))
    return 0


def _bench(args):
    from . import bench
    from .errors import InvalidProblemError
    suites = bench.SUITES if args.suite == "all" else (args.suite,)
    if args.plot and "ode" not in suites:
        raise InvalidProblemError("--plot: draws the ODE work-precision diagrams; use 'bench ode --plot'")
    res = bench.run(suites, quick=args.quick)
    wps = []
    if args.plot:
        from .workprecision import work_precision
        os.makedirs(args.out, exist_ok=True)
        import jitsolve as js
        tols = [1e-4, 1e-6, 1e-8] if args.quick else [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]
        res["work_precision"] = {}
        for name, (prob, _f) in bench.standard_problems().items():
            if name == "lorenz":
                prob = js.remake(prob, tspan=(0.0, 5.0))   # before chaos swamps the comparison
            wp = work_precision(prob, [js.Tsit5(), js.DP5(), js.Vern7(), "scipy:RK45", "scipy:DOP853"],
                                tols, name=name, repeat=1 if args.quick else 3)
            png = os.path.join(args.out, f"work-precision-{name}.png")
            drawn = wp.plot(png) is not None
            res["work_precision"][name] = dict(rows=wp.rows, figure=png if drawn else None)
            wps.append((wp, png if drawn else None))
    if args.json:
        print(bench.to_json(res))
    else:
        print(bench.format_table(res))
        for wp, png in wps:
            print()
            print(wp)
            print(f"wrote {png}" if png else "(install matplotlib for the diagram)")
    return 0


def _profile(args):
    import runpy

    from .errors import InvalidProblemError
    from .profile import profile
    if not os.path.isfile(args.script):
        raise InvalidProblemError(f"SCRIPT: no such file: {args.script!r}")
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [args.script] + list(args.args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    prof = profile()
    try:
        with prof:
            try:
                runpy.run_path(args.script, run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise
    except BaseException:
        print(prof.table() + "\n(the script stopped with an error; the table covers what ran)",
              file=sys.stderr)
        raise
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    if args.json:
        with open(args.json, "w") as f:
            f.write(prof.to_json())
    print(prof.table())
    if args.json:
        print(f"wrote {args.json}")
    return 0


def main(argv=None):
    parser = _Parser(prog="jitsolve", description="jitsolve: differentiable solver engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, threads, cache directory, CUDA and MPI status")
    p_info.set_defaults(func=_info)
    p_demo = sub.add_parser("demo", help="run a complete inverse problem on built-in data")
    p_demo.add_argument("name", nargs="?", default=DEFAULT_DEMO, choices=sorted(DEMOS),
                        help=f"which demo (default {DEFAULT_DEMO})")
    p_demo.add_argument("--size", type=_positive_int, default=None, help="grid cells per axis")
    p_demo.add_argument("--steps", type=_positive_int, default=None,
                        help="time steps (time-dependent demos)")
    p_demo.add_argument("--noise", type=_nonneg_float, default=None,
                        help="relative noise level of the synthetic data")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--maxiter", type=_positive_int, default=None, help="optimizer iterations")
    p_demo.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "mpi"])
    p_demo.add_argument("--out", default=".", help="folder for result.h5 and result.png")
    p_demo.add_argument("--quiet", action="store_true", help="no progress bar")
    p_demo.set_defaults(func=_demo)
    from .bench import SUITES
    p_bench = sub.add_parser("bench", help="measure this machine's bandwidth and each suite's "
                                            "figures as ratios to it and to SciPy/pyamg")
    p_bench.add_argument("suite", nargs="?", default="all", choices=list(SUITES) + ["all"])
    p_bench.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p_bench.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p_bench.add_argument("--plot", action="store_true",
                         help="ode: draw work-precision diagrams (Lorenz, Lotka-Volterra vs SciPy)")
    p_bench.add_argument("--out", default=".", help="folder for the --plot figures")
    p_bench.set_defaults(func=_bench)
    p_prof = sub.add_parser("profile", help="run a Python script and print a per-kernel table")
    p_prof.add_argument("--json", default=None, metavar="FILE", help="also write the table as JSON")
    p_prof.add_argument("script", metavar="SCRIPT.py")
    p_prof.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    p_prof.set_defaults(func=_profile)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the user's mistakes
        from .errors import JitsolveError
        if isinstance(exc, JitsolveError):
            print(f"jitsolve: error: {exc}", file=sys.stderr)
            return 2
        raise
