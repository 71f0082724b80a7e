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
        lines.append(f"numba {numba.__version__}, threads {numba.config.NUMBA_NUM_THREADS}, "
                     f"threading layer {_threading_layer()}")
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


def _threading_layer():
    """The threading layer Numba uses in this process, as Numba resolves it (starting its
    thread pool without compiling anything), with the requested one when they differ."""
    import numba
    requested = str(numba.config.THREADING_LAYER)
    try:
        return numba.threading_layer()      # already started by a parallel kernel
    except ValueError:
        pass
    try:
        from numba.np.ufunc import parallel as _par
        _par._launch_threads()
        layer = numba.threading_layer()
    except Exception as exc:   # no layer available (e.g. a broken TBB/OpenMP install)
        return f"none usable (requested {requested!r}: {exc})"
    return layer if layer == requested else f"{layer} (requested {requested!r})"


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


#: demo name -> what ``--size`` counts for it
SIZE_MEANS = {
    "conductivity": "grid cells per side",
    "heat-inverse": "grid cells per side",
    "lotka-volterra": "observation times",
    "sde-calibration": "observed paths (and as many model paths)",
}

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


def _seed(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= v < 2 ** 62:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 2**62 - 1, got {text!r}")
    return v


def _output_folder(path, option):
    """Create ``path`` (a folder for output files) or raise naming ``option``."""
    from .errors import InvalidProblemError
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidProblemError(f"{option}: {path!r} exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InvalidProblemError(f"{option}: cannot create the folder {path!r} "
                                  f"({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidProblemError(f"{option}: the folder {path!r} is not writable")


def _output_file(path, option):
    """Check that ``path`` can be written (its folder exists and is writable, it is not
    a folder) without creating it; raise naming ``option``."""
    from .errors import InvalidProblemError
    if os.path.isdir(path):
        raise InvalidProblemError(f"{option}: {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidProblemError(f"{option}: the folder {folder!r} does not exist")
    if (os.access(path, os.W_OK) if os.path.exists(path)
            else os.access(folder, os.W_OK | os.X_OK)) is False:
        raise InvalidProblemError(f"{option}: {path!r} is not writable")


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

    from .errors import BackendUnavailableError, InvalidProblemError, UnsupportedAlgorithmError
    fname, missing = DEMOS[args.name]
    if fname is None:
        raise UnsupportedAlgorithmError(f"demo {args.name!r} needs {missing}, not built yet; "
                                        f"available: {', '.join(n for n, (f, _) in DEMOS.items() if f)}")
    if args.backend != "cpu":
        raise BackendUnavailableError(f"--backend: {args.backend!r} is not built yet; use cpu")
    from . import demo_report, demos
    import inspect
    fn = getattr(demos, fname)
    accepted = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in ("size", "steps", "noise", "maxiter")
              if getattr(args, k) is not None}
    for k in kwargs:
        if k not in accepted:
            raise InvalidProblemError(f"--{k}: the {args.name} demo has no such option")
    least = demos.MIN_SIZE[fname]
    if args.size is not None and args.size < least:
        raise InvalidProblemError(f"--size: the {args.name} demo needs at least {least} "
                                  f"{SIZE_MEANS[args.name]}, got {args.size}")
    _output_folder(args.out, "--out")
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
    if args.plot:
        _output_folder(args.out, "--out")
    res = bench.run(suites, quick=args.quick)
    wps = []
    if args.plot:
        from .workprecision import work_precision
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


class _FromScript:
    """Marks an exception raised by the profiled script itself, so that :func:`main` lets
    it through (traceback, exit 1) even when it is a jitsolve error: the one-line
    handler is for the command line's own arguments."""

    attr = "_jitsolve_raised_by_script"

    @classmethod
    def mark(cls, exc):
        try:
            setattr(exc, cls.attr, True)
        except Exception:   # pragma: no cover - an exception type without a __dict__
            pass

    @classmethod
    def marked(cls, exc):
        return bool(getattr(exc, cls.attr, False))


def _profile(args):
    import runpy

    from .errors import InvalidProblemError
    from .profile import profile
    if args.script is None:
        raise InvalidProblemError("SCRIPT.py: give the Python script to run "
                                  "(jitsolve profile [--json FILE] SCRIPT.py [ARGS ...])")
    if os.path.isdir(args.script):
        if not os.path.isfile(os.path.join(args.script, "__main__.py")):
            raise InvalidProblemError(f"SCRIPT.py: {args.script!r} is a folder without a "
                                      f"__main__.py; give a Python script")
    elif not os.path.isfile(args.script):
        raise InvalidProblemError(f"SCRIPT.py: no such file: {args.script!r}")
    if args.json:
        _output_file(args.json, "--json")
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [args.script] + list(args.args)
    if not os.path.isdir(args.script):   # run_path puts a folder on sys.path itself
        sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    prof = profile()
    try:
        with prof:
            try:
                runpy.run_path(args.script, run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise
    except BaseException as exc:
        _FromScript.mark(exc)
        print(prof.table() + "\n(the script stopped with an error; the table covers what ran)",
              file=sys.stderr)
        raise
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    print(prof.table())
    if args.json:
        try:
            with open(args.json, "w") as f:
                f.write(prof.to_json())
        except OSError as exc:   # checked before the run; something changed since
            raise InvalidProblemError(
                f"--json: cannot write {args.json!r} ({exc.strerror or exc}); "
                f"the table is above") from None
        print(f"wrote {args.json}")
    return 0


def main(argv=None):
    parser = _Parser(prog="jitsolve", description="jitsolve: differentiable solver engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, threads, cache directory, CUDA and MPI status")
    p_info.set_defaults(func=_info)
    from .demos import MIN_SIZE
    least = {n: MIN_SIZE[f] for n, (f, _) in DEMOS.items() if f}
    p_demo = sub.add_parser("demo", help="run a complete inverse problem on built-in data")
    p_demo.add_argument("name", nargs="?", default=DEFAULT_DEMO, choices=sorted(DEMOS),
                        help=f"which demo (default {DEFAULT_DEMO})")
    size_help = "; ".join(f"{n}: {m} (at least {least[n]})" for n, m in SIZE_MEANS.items())
    p_demo.add_argument("--size", type=_positive_int, default=None,
                        help=f"problem size: {size_help}")
    p_demo.add_argument("--steps", type=_positive_int, default=None,
                        help="time steps (time-dependent demos)")
    p_demo.add_argument("--noise", type=_nonneg_float, default=None,
                        help="relative noise level of the synthetic data")
    p_demo.add_argument("--seed", type=_seed, default=0, help="seed of the synthetic noise")
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
    p_prof.add_argument("script", metavar="SCRIPT.py", nargs="?", default=None,
                        help="the script (or a folder with a __main__.py)")
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
        if isinstance(exc, JitsolveError) and not _FromScript.marked(exc):
            print(f"jitsolve: error: {exc}", file=sys.stderr)
            return 2
        raise
