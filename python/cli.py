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


def main(argv=None):
    parser = _Parser(prog="jitsolve", description="jitsolve: differentiable solver engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, threads, cache directory, CUDA and MPI status")
    p_info.set_defaults(func=_info)
    from . import demo as _demo
    _demo.add_parser(sub, _Parser)
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
