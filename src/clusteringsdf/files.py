"""Writing files completely or not at all.

Every output of the package (checkpoints, JSON, images, meshes, pages) is written to a hidden
temporary file next to its destination and renamed into place, so a crash or a kill never leaves a
half-written file where a complete one is expected (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends without an error
    (and is removed when it raises). Parent folders are created. The temporary name keeps the
    suffix, so writers that choose a format by suffix (PIL, numpy, trimesh) still work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, save: Callable[[Path], Any]) -> None:
    """Call ``save(tmp)`` to write a temporary file, then move it to ``path``."""
    with atomic_path(path) as tmp:
        save(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Pretty, key-sorted JSON (one trailing newline)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
