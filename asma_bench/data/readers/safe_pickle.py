"""Load pickles from strangers without running their code.

Label files of the SSL lineage and PYSKL annotation files are pickles. A pickle can name any
importable callable and have it called while loading, so :class:`SafeUnpickler` resolves
only an allow-list of globals: the builtin container/number types and the few numpy
functions that rebuild numeric arrays and scalars from bytes. Anything else (``os.system``,
``builtins.eval``, ``subprocess.Popen``, arbitrary classes) raises
:class:`~asma_bench.errors.UnsafePickleError` before it is called.

>>> load_pickle(path)  # doctest: +SKIP
(['S001C001P001R001A001', ...], [0, ...])
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import os
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np

from asma_bench.data.readers._common import one_line
from asma_bench.errors import AsmaBenchError, DataFormatError, UnsafePickleError

_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1"}


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if not isinstance(text, str) or encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1", errors)


def _numpy_core() -> Any:
    # numpy >= 2 keeps the implementation in numpy._core; numpy 1.x pickles name numpy.core
    return getattr(np, "_core", None) or np.core


def _allowed_globals() -> dict[tuple[str, str], Any]:
    core = _numpy_core()
    allowed: dict[tuple[str, str], Any] = {}
    for module in ("builtins", "__builtin__"):  # __builtin__: Python 2 / protocol 0-2 names
        # the only builtins pickle rebuilds by calling them (the rest have opcodes)
        for obj in (set, frozenset, bytes, bytearray, complex):
            allowed[(module, obj.__name__)] = obj
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = core.multiarray.scalar
        allowed[(f"{prefix}.numeric", "_frombuffer")] = core.numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


ALLOWED_GLOBALS = _allowed_globals()


def _python3_name(module: str, name: str) -> str:
    """What a Python-2 style global (protocol < 3) would resolve to, for the error message."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only plain containers, numbers and numpy arrays.

    ``path`` is only used to name the file in errors.
    """

    def __init__(self, file: io.BufferedIOBase, path: str | os.PathLike[str] = "<pickle>"):
        # latin1 lets numpy arrays pickled under Python 2 load (their raw data is a str)
        super().__init__(file, encoding="latin1")
        self.path = os.fspath(path)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                self.path,
                f"refusing to load: the pickle asks for {_python3_name(module, name)}, which is "
                "not a plain container, string, number or numeric numpy array",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self.path, "refusing to load: the pickle uses persistent ids")


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; every failure is a one-line error."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise DataFormatError(path, "empty file")
            return SafeUnpickler(fh, path).load()
    except AsmaBenchError:
        raise
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # truncated or corrupt streams raise many types
        raise DataFormatError(
            path, f"not a readable pickle ({type(exc).__name__}: {one_line(exc)})"
        ) from None
