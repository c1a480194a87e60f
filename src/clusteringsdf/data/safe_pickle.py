"""A restricted unpickler for ``segmentation_data.pkl``.

A pickle can execute arbitrary code when loaded. Scene metadata only ever needs plain containers and
numbers, so everything else (functions, arbitrary classes, ``os.system`` ...) is refused with a
:class:`DataError` that names the file and the forbidden global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from ..errors import DataError

# (module, name) pairs a metadata pickle may reference. Builtin containers and numbers need no
# global at all; these cover the few that do, plus numeric numpy scalars/arrays written by numpy.
_ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden content: global '{module}.{name}'")


def _check_numeric(value: Any, path: Path) -> None:
    """Reject numpy object arrays (they could smuggle references) after loading."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        raise DataError(path, "forbidden content: numpy object array")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numeric(key, path)
            _check_numeric(item, path)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_numeric(item, path)


def load_safe_pickle(path: Path) -> Any:
    """Load a pickle that may only contain plain containers, strings and numbers (and numeric arrays)."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        data = _RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise DataError(path, f"refused to load pickle: {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OSError) as exc:
        raise DataError(path, f"unreadable pickle ({type(exc).__name__}: {exc})") from None
    _check_numeric(data, path)
    return data
