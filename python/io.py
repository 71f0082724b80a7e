"""HDF5 input and output of solutions (h5py; never pickle).

Layout: the root group carries ``format = "jitsolve"``, ``format_version``, ``kind``
(the solution class) and scalar fields as attributes; arrays are datasets.  Reading
checks each of these, so a file that is not HDF5, was written by something else, or
is truncated gives a :class:`jitsolve.errors.FileFormatError` saying which.
"""
import os

import numpy as np

from .errors import FileFormatError, InvalidProblemError
from .log import get_logger
from .retcodes import ReturnCode

__all__ = ["save_solution", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "jitsolve"
FORMAT_VERSION = 1


def _kinds():
    from .solution import EnsembleSolution, LinearSolution, ODESolution, SDESolution
    return {c.__name__: c for c in (ODESolution, SDESolution, LinearSolution, EnsembleSolution)}


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a hard dependency
        raise FileFormatError("h5py is required for HDF5 files: pip install h5py") from exc
    return h5py


def save_solution(sol, path):
    """Write ``sol`` to ``path`` (overwritten)."""
    from . import __version__
    h5py = _h5py()
    kind = type(sol).__name__
    if kind not in _kinds():
        raise InvalidProblemError(f"sol: cannot write a {kind} to HDF5")
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidProblemError(f"path: expected a file path, got {type(path).__name__}")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["kind"] = kind
        f.attrs["jitsolve_version"] = __version__
        for k, v in sol._attrs().items():
            f.attrs[k] = v
        for k, v in sol._arrays().items():
            f.create_dataset(k, data=np.asarray(v))
    get_logger("io").info("wrote %s to %s", kind, path)


def load(path):
    """Read a solution written by ``sol.to_hdf5(path)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    jitsolve.errors.FileFormatError
        Not an HDF5 file, not a jitsolve file, a newer format version, or a missing or
        corrupt field.

    Examples
    --------
    >>> import numpy as np, jitsolve as js, tempfile, os
    >>> sol = js.LinearSolution(np.ones(3), js.ReturnCode.Success, iters=2, resnorm=0.0)
    >>> path = os.path.join(tempfile.mkdtemp(), "sol.h5")
    >>> sol.to_hdf5(path); js.load(path).iters
    2
    """
    h5py = _h5py()
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidProblemError(f"path: expected a file path, got {type(path).__name__}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such file {os.fspath(path)!r}")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{os.fspath(path)!r} is not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise FileFormatError(
                    f"{os.fspath(path)!r} is an HDF5 file but not a jitsolve solution (no format='jitsolve')")
            version = attrs.get("format_version")
            if not isinstance(version, (int, np.integer)) or version > FORMAT_VERSION:
                raise FileFormatError(
                    f"{os.fspath(path)!r} has format version {version!r}; this jitsolve reads <= {FORMAT_VERSION}")
            kind = attrs.get("kind")
            kinds = _kinds()
            if kind not in kinds:
                raise FileFormatError(f"{os.fspath(path)!r} holds an unknown kind {kind!r}")
            bad = [k for k in f.keys() if not isinstance(f[k], h5py.Dataset)]
            if bad:
                raise FileFormatError(f"{os.fspath(path)!r} is a corrupt {kind}: field "
                                      f"{bad[0]!r} is a {type(f[bad[0]]).__name__}, not a dataset")
            arrays = {k: f[k][()] for k in f.keys()}
    except FileFormatError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(f"{os.fspath(path)!r} could not be read: {exc}") from exc
    try:
        ReturnCode(attrs.get("retcode"))
        return kinds[kind]._from_hdf5(arrays, attrs)
    except (KeyError, ValueError, TypeError) as exc:
        raise FileFormatError(f"{os.fspath(path)!r} is a corrupt {kind}: {exc}") from exc


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v
