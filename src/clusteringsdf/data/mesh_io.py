"""Mesh files: written with trimesh (atomically), read with trimesh, and per-face labels read with plyfile.

Why two libraries: trimesh (5.2) writes per-face attributes into a PLY but its loader exposes them
only through a private metadata key; plyfile reads any PLY property of any element, which is what
ground-truth meshes from other tools need (per-face ``instance`` in ours, per-face ``object_id`` in
Replica's ``mesh_semantic.ply`` with quad faces, per-vertex ids in some ScanNet exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_write

INSTANCE_KEYS = ("instance", "instance_id", "object_id")  # per-face (preferred) or per-vertex instance ids


def write_mesh(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_colors: np.ndarray | None = None,
    *,
    face_attributes: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a triangle mesh, format by suffix (PLY binary, GLB, OBJ ...), atomically.

    vertices (N, 3) float; faces (M, 3) int; vertex_colors (N, 3|4) uint8; face_attributes name ->
    (M,) integer arrays (PLY only, written as int32 face properties).
    """
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=False, validate=False)
    if vertex_colors is not None:
        mesh.visual.vertex_colors = np.asarray(vertex_colors, dtype=np.uint8)
    for name, values in (face_attributes or {}).items():
        values = np.asarray(values)
        if values.shape != (len(faces),):
            raise ValueError(f"face attribute '{name}' must have shape ({len(faces)},), got {values.shape}")
        mesh.face_attributes[name] = values.astype(np.int32)
    suffix = Path(path).suffix.lower().lstrip(".")
    atomic_write(path, lambda tmp: tmp.write_bytes(mesh.export(file_type=suffix)))


def read_mesh(path: Path, *, missing: str = "mesh file not found"):
    """A ``trimesh.Trimesh`` (geometry and vertex colours, unprocessed); a one-line DataError when
    the file is absent (saying ``missing``) or unreadable."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DataError(path, missing)
    try:
        return trimesh.load(path, process=False, force="mesh")
    except Exception as exc:  # noqa: BLE001 - any parser error is a bad file
        raise DataError(path, f"unreadable mesh ({exc})") from None


def read_mesh_arrays(path: Path, *, missing: str = "mesh file not found") -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float32 and triangles (M, 3) int32 of a mesh file, errors as :func:`read_mesh`."""
    mesh = read_mesh(path, missing=missing)
    return np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces, dtype=np.int32)


@dataclass
class LabelledMesh:
    """A triangle mesh with per-face instance ids: vertices (N, 3), faces (M, 3), instance (M,) or
    None when the file has none; ``instance_source`` says where they came from."""

    vertices: np.ndarray
    faces: np.ndarray
    instance: np.ndarray | None
    instance_source: str


def read_labelled_mesh(path: Path) -> LabelledMesh:
    """Read a PLY with per-face (preferred) or per-vertex instance ids (:data:`INSTANCE_KEYS`).

    Polygons are split into triangle fans, each triangle keeping its polygon's id; per-vertex ids
    give each triangle the majority id of its corners.
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "mesh file not found")
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
        face = ply["face"].data
    except Exception as exc:  # noqa: BLE001 - plyfile raises several kinds on bad input
        raise DataError(path, f"unreadable PLY mesh ({exc})") from None
    vertices = np.stack([np.asarray(vertex[a], dtype=np.float64) for a in "xyz"], axis=-1)
    index_name = next((n for n in ("vertex_indices", "vertex_index") if n in face.dtype.names), None)
    if index_name is None:
        raise DataError(path, "PLY faces have no vertex_indices property")
    polygons = face[index_name]
    sizes = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
    if len(polygons) and sizes.min() < 3:
        raise DataError(path, "PLY has faces with fewer than 3 vertices")
    triangles, owner = [], []
    for size in np.unique(sizes):
        rows = np.nonzero(sizes == size)[0]
        block = np.stack([np.asarray(polygons[i], dtype=np.int64) for i in rows])
        for k in range(1, size - 1):  # fan: (0, k, k + 1)
            triangles.append(block[:, [0, k, k + 1]])
            owner.append(rows)
    faces = np.concatenate(triangles) if triangles else np.zeros((0, 3), dtype=np.int64)
    owner_index = np.concatenate(owner) if owner else np.zeros(0, dtype=np.int64)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise DataError(path, "PLY face indices out of range")
    for key in INSTANCE_KEYS:
        if key in face.dtype.names:
            return LabelledMesh(vertices, faces, np.asarray(face[key], dtype=np.int64)[owner_index], f"per-face '{key}'")
    for key in INSTANCE_KEYS:
        if key in vertex.dtype.names:
            corner_ids = np.asarray(vertex[key], dtype=np.int64)[faces]  # (M, 3)
            a, b, c = corner_ids.T
            majority = np.where((b == c) & (a != b), b, a)  # a unless the other two agree against it
            return LabelledMesh(vertices, faces, majority, f"per-vertex '{key}'")
    return LabelledMesh(vertices, faces, None, "none")
