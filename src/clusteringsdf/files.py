"""Writing files completely or not at all.

Every output of the package (checkpoints, JSON, images, meshes, pages) is written to a hidden
temporary file next to its destination and renamed into place, so a crash or a kill never leaves a
half-written file where a complete one is expected (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DataError


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


@contextmanager
def staged_folder(out: str | Path, *, force: bool = False, keep: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out`` to fill; when the block ends without an error
    it takes the place of ``out`` (removed when it raises), so ``out`` holds a complete output or
    what it held before.

    Raises:
        DataError: ``out`` is a file, or a folder that holds files and ``force`` is not given
            (checked before the block runs; with ``force`` its old content is removed, after the
            new one is complete), or ``out`` is or holds one of the ``keep`` folders (the inputs).
    """
    out = Path(out)
    for folder in keep:
        folder = Path(folder).resolve()
        if out.resolve() == folder or out.resolve() in folder.parents:
            raise DataError(out, f"would replace {folder}, an input of this command; choose another output folder")
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError(out, "exists and is not empty; refusing to overwrite it (give --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old.exists():
                os.replace(old, out)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
