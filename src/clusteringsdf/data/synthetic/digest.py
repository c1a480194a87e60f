"""A content digest of a scene folder: what a scene holds, independent of how its files were encoded
(PNG pixels and NPZ arrays decoded, so the zlib build does not matter; the mesh decoded to its
vertices, faces and face properties, so the PLY writer does not matter). Used to prove that a change
leaves the synthetic presets' output unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def content_digest(root: Path) -> str:
    """sha256 over every file's relative path and decoded content."""
    from plyfile import PlyData

    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.suffix == ".png":
            with Image.open(path) as image:
                digest.update(f"{image.mode}{image.size}".encode())
                digest.update(np.asarray(image).tobytes())
        elif path.suffix == ".npz":
            with np.load(path) as arrays:
                for key in sorted(arrays.files):
                    digest.update(f"{key}{arrays[key].dtype}".encode())
                    digest.update(arrays[key].tobytes())
        elif path.suffix == ".ply":
            ply = PlyData.read(str(path))
            digest.update(np.stack([np.asarray(ply["vertex"][a], dtype=np.float32) for a in "xyz"], -1).tobytes())
            face = ply["face"].data
            digest.update(np.stack([np.asarray(f, dtype=np.int64) for f in face["vertex_indices"]]).tobytes())
            for name in sorted(n for n in face.dtype.names if n != "vertex_indices"):
                digest.update(name.encode() + np.asarray(face[name], dtype=np.int64).tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()
