"""HDF5 input and output of solutions (h5py; never pickle).

Layout: the root group carries ``format = "jitsolve"``, ``format_version``, ``kind``
(the solution class) and scalar fields as attributes; arrays are datasets.  Since the
forty-seventh session files use HDF5 1.10's object formats (checksummed metadata) and
fixed-length UTF-8 strings, which h5py returns as ``bytes`` (``f.attrs["kind"]`` is
``b"ODESolution"``: decode it when reading a file with h5py directly).  Reading
checks each of these and each field against the others, so a file that is not HDF5,
was written by something else, is truncated or corrupt gives a
:class:`jitsolve.errors.FileFormatError` naming the file and the field.  Datasets,
groups and attributes that jitsolve did not write (a user's metadata) are ignored.

Writing builds and checks every field first, writes a temporary file in the target's
folder and moves it onto the path (``os.replace``): a refused or interrupted write
leaves a file already at the path as it was.
"""
import os
import secrets

import numpy as np

from .errors import FileFormatError, InvalidProblemError
from .log import get_logger

__all__ = ["save_solution", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "jitsolve"
FORMAT_VERSION = 1

# root attributes jitsolve reads (with ``stats_*``); any other attribute is ignored
_KNOWN_ATTRS = ("format", "format_version", "kind", "retcode", "alg", "iters", "resnorm")

# the earliest HDF5 release whose object formats the written files use: 1.10's headers
# and chunk indexes are checksummed (files stay readable by HDF5 1.10 and later)
_LIBVER = ("v110", "latest")


def _kinds():
    from .solution import EnsembleSolution, LinearSolution, ODESolution, SDESolution
    return {c.__name__: c
            for c in (ODESolution, SDESolution, LinearSolution, EnsembleSolution)}


def _kind_of(sol):
    """The registered solution class ``sol`` is (or derives from, the nearest one)."""
    kinds = _kinds()
    for c in type(sol).__mro__:
        if kinds.get(c.__name__) is c:
            return c
    return None


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a hard dependency
        raise FileFormatError("h5py is required for HDF5 files: pip install h5py") from exc
    return h5py


def check_write_path(path, what="the file"):
    """``path`` as a string after checking that it names a file that can be created: a
    str or os.PathLike whose folder exists and which is not itself a folder
    (:class:`InvalidProblemError` naming ``path``).  Shared with
    :class:`jitsolve.HDF5Store`."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InvalidProblemError(f"path: expected a file path, got {type(path).__name__}")
    p = os.fspath(path)
    if isinstance(p, bytes):
        raise InvalidProblemError("path: expected a str file path, got bytes")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise InvalidProblemError(f"path: the folder {folder!r} of {what} does not exist")
    if os.path.isdir(p):
        raise InvalidProblemError(f"path: {p!r} is a folder, not a file")
    return p


def holds_solution(path):
    """Whether ``path`` is an HDF5 file carrying ``format = "jitsolve"`` (a solution
    written by ``to_hdf5``); False for a missing, foreign or unreadable file."""
    h5py = _h5py()
    try:
        if not os.path.isfile(path) or not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return _plain(f.attrs.get("format")) == FORMAT
    except Exception:
        return False


def _check_fields(sol, kind):
    """Every dataset and attribute of ``sol`` built and checked before anything is
    written: ``(arrays, attrs)``; :class:`InvalidProblemError` naming ``sol`` and the
    field that cannot be written or would not load back."""
    from .solution import _NUMERIC, CorruptField
    try:
        attrs = dict(sol._attrs())
        arrays = {k: np.asarray(v) for k, v in sol._arrays().items()}
    except InvalidProblemError:
        raise
    except Exception as exc:
        raise InvalidProblemError(f"sol: its fields cannot be written to HDF5: "
                                  f"{type(exc).__name__}: {exc}") from exc
    for k, a in arrays.items():
        ok = "S" if k == "retcodes" else _NUMERIC
        if a.dtype.kind not in ok:
            raise InvalidProblemError(f"sol: field {k!r} holds {a.dtype} values; an HDF5 "
                                      f"solution file holds "
                                      f"{'return-code names' if ok == 'S' else 'numbers'}")
    for k, v in attrs.items():
        if isinstance(v, np.generic):
            v = attrs[k] = v.item()
        if not isinstance(v, (str, int, float)):
            raise InvalidProblemError(f"sol: field {k!r} is a {type(v).__name__}; expected "
                                      f"a number or a string")
    try:                        # what js.load will check: a file written always loads
        kind._from_hdf5(arrays, attrs)
    except CorruptField as exc:
        raise InvalidProblemError(f"sol: cannot be written to HDF5 (it would not load "
                                  f"back): {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidProblemError(f"sol: cannot be written to HDF5 (it would not load "
                                  f"back): {exc}") from exc
    return arrays, attrs


def save_solution(sol, path):
    """Write ``sol`` to ``path``; a file already there is replaced only once the new one
    is complete (written to a temporary file in the same folder, then ``os.replace``).
    Array fields carry Fletcher-32 checksums and the metadata (headers, chunk indexes,
    strings) HDF5 1.10's, so :func:`load` refuses a file whose bytes changed on disk
    (reading needs HDF5 >= 1.10; files written before, without them, still load).

    Raises
    ------
    jitsolve.errors.InvalidProblemError
        ``sol:`` a kind or a field that cannot be written; ``path:`` not a path, its
        folder missing, a folder, or the file cannot be created or replaced.  The file
        at ``path`` is then untouched.
    """
    from . import __version__
    h5py = _h5py()
    kind = _kind_of(sol)
    if kind is None:
        raise InvalidProblemError(f"sol: cannot write a {type(sol).__name__} to HDF5")
    p = check_write_path(path)
    arrays, attrs = _check_fields(sol, kind)
    target = os.path.realpath(p)            # through a symlink, as h5py's "w" would write
    folder, base = os.path.split(target)
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
    field = None
    try:
        # HDF5 1.10 object formats: every object header and chunk index carries a
        # checksum (HDF5 1.8's do not: a flipped byte there read as another value or
        # crashed the library); strings are fixed-length, inside those headers (a
        # variable-length string lives in the unchecked global heap, where a flipped
        # length byte sent HDF5 into an endless loop)
        with h5py.File(tmp, "x", libver=_LIBVER) as f:
            f.attrs["format"] = _fixed(FORMAT)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["kind"] = _fixed(kind.__name__)
            f.attrs["jitsolve_version"] = _fixed(__version__)
            for field, v in attrs.items():
                f.attrs[field] = _fixed(v) if isinstance(v, str) else v
            for field, v in arrays.items():
                # Fletcher-32 checksums on every chunked dataset: a flipped data byte is
                # a read error, not a silently different solution
                f.create_dataset(field, data=v, fletcher32=v.ndim > 0 and v.size > 0)
            field = None
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)                    # on disk before it takes the path's place
        finally:
            os.close(fd)
        if os.path.isfile(target):
            try:
                os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            except OSError:
                pass
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if not isinstance(exc, Exception) or isinstance(exc, MemoryError):
            raise
        if field is not None and not isinstance(exc, OSError):
            raise InvalidProblemError(f"sol: field {field!r} cannot be written to HDF5: "
                                      f"{exc}") from exc
        raise InvalidProblemError(f"path: cannot write {p!r}: {exc}") from exc
    get_logger("io").info("wrote %s to %s", kind.__name__, p)


def load(path):
    """Read a solution written by ``sol.to_hdf5(path)``.

    Datasets, groups and attributes that jitsolve does not write (a user's metadata)
    are ignored; every field jitsolve reads is checked against the others.

    Raises
    ------
    FileNotFoundError
        No such file.
    jitsolve.errors.InvalidProblemError
        ``path`` is not a str or os.PathLike.
    jitsolve.errors.FileFormatError
        Not an HDF5 file, not a jitsolve file, a format version this jitsolve does not
        read, or a missing, unreadable or inconsistent field (the message names the file
        and the field; the cause is chained).

    Examples
    --------
    >>> import numpy as np, jitsolve as js, tempfile, os
    >>> sol = js.LinearSolution(np.ones(3), js.ReturnCode.Success, iters=2, resnorm=0.0)
    >>> path = os.path.join(tempfile.mkdtemp(), "sol.h5")
    >>> sol.to_hdf5(path); js.load(path).iters
    2
    """
    h5py = _h5py()
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InvalidProblemError(f"path: expected a file path, got {type(path).__name__}")
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"path: no such file {p!r}")
    if os.path.isdir(p):
        raise FileFormatError(f"path: {p!r} is a folder, not an HDF5 file")
    try:
        hdf5 = h5py.is_hdf5(p)
    except Exception as exc:
        raise FileFormatError(f"path: {p!r} could not be read: {exc}") from exc
    if not hdf5:
        raise FileFormatError(f"path: {p!r} is not an HDF5 file")
    field = None
    try:
        with h5py.File(p, "r") as f:
            field = "format"
            attrs = {"format": _plain(f.attrs.get("format"))}
            if attrs["format"] != FORMAT:
                raise FileFormatError(f"path: {p!r} is an HDF5 file but not a jitsolve "
                                      f"solution (no format='jitsolve')")
            field = "format_version"
            _check_version(p, _plain(f.attrs.get("format_version")),
                           f.attrs.get("jitsolve_version"))
            field = "kind"
            kind = _plain(f.attrs.get("kind"))
            kinds = _kinds()
            if not isinstance(kind, str) or kind not in kinds:
                raise FileFormatError(f"path: {p!r} holds an unknown kind {kind!r}")
            cls = kinds[kind]
            field = None
            for k in list(f.attrs.keys()):
                if k in _KNOWN_ATTRS or k.startswith("stats_"):
                    field = k
                    attrs[k] = _plain(f.attrs[k])
            field = None
            arrays = {}
            for k in cls._HDF5_FIELDS:
                field = k
                if k not in f:
                    continue
                obj = f[k]
                if not isinstance(obj, h5py.Dataset):
                    raise FileFormatError(f"path: {p!r} is a corrupt {kind}: field {k!r} "
                                          f"is a {type(obj).__name__}, not a dataset")
                v = obj[()]
                if isinstance(v, h5py.Empty):
                    raise FileFormatError(f"path: {p!r} is a corrupt {kind}: field {k!r} "
                                          f"holds no data (an empty dataspace)")
                arrays[k] = v
    except FileFormatError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        where = "" if field is None else f" field {field!r}"
        why = ("; its checksum failed: the file changed on disk after it was written"
               if "filter returned failure" in str(exc) else "")
        raise FileFormatError(f"path: {p!r} could not be read:{where} "
                              f"({type(exc).__name__}: {exc}){why}") from exc
    from .solution import CorruptField
    try:
        return cls._from_hdf5(arrays, attrs)
    except CorruptField as exc:
        raise FileFormatError(f"path: {p!r} is a corrupt {kind}: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise FileFormatError(f"path: {p!r} is a corrupt {kind}: "
                              f"{type(exc).__name__}: {exc}") from exc


def _check_version(p, version, written_by):
    """Refuse a ``format_version`` that is not an integer from 1 to FORMAT_VERSION
    (an integer-valued float such as 1.0 is one), saying which rule it breaks."""
    ok = (isinstance(version, (int, float)) and not isinstance(version, bool)
          and float(version).is_integer())
    if not ok:
        raise FileFormatError(f"path: {p!r} has format_version {version!r}, which is not "
                              f"an integer (this jitsolve reads 1 to {FORMAT_VERSION})")
    v = int(version)
    if v < 1:
        raise FileFormatError(f"path: {p!r} has format_version {v}, older than any "
                              f"jitsolve format (the first is 1)")
    if v > FORMAT_VERSION:
        by = _plain(written_by)
        by = f" (written by jitsolve {by})" if isinstance(by, str) else ""
        raise FileFormatError(f"path: {p!r} has format_version {v}, newer than this "
                              f"jitsolve reads (1 to {FORMAT_VERSION}){by}: upgrade "
                              f"jitsolve")


def _fixed(s):
    """``s`` as a fixed-length UTF-8 string (labelled UTF-8 for HDF5 tools), which HDF5
    keeps in the checksummed object header; :func:`_plain` reads it back as ``str``
    (h5py itself returns fixed-length strings as ``bytes``)."""
    b = s.encode("utf-8")
    return np.array(b, dtype=_h5py().string_dtype("utf-8", max(1, len(b))))


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v
