"""A minimal binary little-endian PLY writer for triangle meshes with integer per-face labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_labelled_mesh_ply(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    face_properties: dict[str, np.ndarray],
    comment: str | None = None,
) -> None:
    """Write ``vertices`` (N, 3) float and triangle ``faces`` (M, 3) with int32 per-face properties.

    The file has ``element vertex`` with ``float x, y, z`` and ``element face`` with
    ``list uchar int vertex_indices`` followed by one ``int`` property per entry of
    ``face_properties`` (each an (M,) integer array), in the given order. Written atomically.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (M, 3) triangles, got {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("face indices out of range")
    for name, values in face_properties.items():
        if np.asarray(values).shape != (len(faces),):
            raise ValueError(f"face property '{name}' must have shape ({len(faces)},)")

    header = ["ply", "format binary_little_endian 1.0"]
    if comment:
        header += [f"comment {line}" for line in comment.splitlines()]
    header += [f"element vertex {len(vertices)}", "property float x", "property float y", "property float z"]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    header += [f"property int {name}" for name in face_properties]
    header.append("end_header")

    vertex_data = vertices.astype("<f4")
    face_dtype = np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))] + [(name, "<i4") for name in face_properties])
    face_data = np.zeros(len(faces), dtype=face_dtype)
    face_data["count"] = 3
    face_data["vertex_indices"] = faces
    for name, values in face_properties.items():
        face_data[name] = np.asarray(values, dtype=np.int64)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(vertex_data.tobytes())
        handle.write(face_data.tobytes())
    os.replace(tmp, path)
