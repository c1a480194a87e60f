"""The rules that clean an object's surface after marching cubes, each a function of the surface and
what is known at its vertices.

A channel is free to put surface anywhere it is never rendered, and does: copies of a neighbour's
surface that coincide with it, shells buried in the floor or a wall, blobs around a neighbour. The
rules keep what the channel actually shows:

1. :func:`inside_another_object`: vertices another object contains are not this object's.
2. :func:`unseen_copy`: unseen vertices hugging another object's surface are copies of it.
3. :func:`cut_faces`: faces touching vertices of rules 1-2 go (unless that is every face).
4. :func:`drop_unobserved_components`: components the cameras barely saw, or the labels seldom
   gave the object's class, go.
5. :func:`clean_components`: components small next to the object's largest go.
6. :func:`is_fragment`: an object left tiny next to the scene is no object.

Why each threshold is what it is, with the measurements behind it: docs/meshing.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_OBSERVED_SHARE = 0.1  # object mesh components with less of their area observed are dropped
MIN_OBSERVED_AREA = 0.5  # and those with less observed area than this share of the best-observed one's
MIN_LABEL_SUPPORT = 0.5  # and those labelled the object's class under this share as often as the best-confirmed one
COPY_TOLERANCE = 1.0  # unobserved vertices closer than this many grid steps to another object's surface are copies
DUPLICATE_SLACK = 1.0  # an object's vertices more than this many grid steps inside a duplicate of it are cut
MIN_OBJECT_SURFACE = 2e-4  # object meshes with less area than this share of the scene's are fragments


@dataclass
class Surface:
    """A triangle mesh in normalised coordinates: vertices (N, 3), faces (M, 3), outward vertex normals (N, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray


def keep_faces(surface: Surface, keep: np.ndarray) -> Surface | None:
    """The faces where ``keep`` (M,) is true and the vertices they use; None when none is kept."""
    if not keep.any():
        return None
    used = np.unique(surface.faces[keep])
    remap = np.full(len(surface.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Surface(surface.vertices[used], remap[surface.faces[keep]], surface.normals[used])


def components(surface: Surface) -> tuple[np.ndarray, np.ndarray]:
    """Connected component of every face (M,) and the area of every face (M,)."""
    import trimesh

    mesh = trimesh.Trimesh(surface.vertices, surface.faces, process=False, validate=False)
    return trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces)), mesh.area_faces


def area(surface: Surface) -> float:
    """Total area of a surface (normalised units squared)."""
    import trimesh

    return float(trimesh.triangles.area(surface.vertices[surface.faces]).sum())


def inside_another_object(others: np.ndarray, duplicates: np.ndarray, step: float) -> np.ndarray:
    """(N,) bool: vertices inside another object, not this one's surface.

    Rule: a vertex is inside another object when the SDF of some other channel that owns part of
    the scene's surface is <= 0 there (``others`` (N,): their minimum), or when a duplicate channel
    of this object (one that holds it too) contains it more than ``DUPLICATE_SLACK`` (1) grid step
    deep (``duplicates`` (N,): their minimum SDF, inf without duplicates): a duplicate's surface
    interleaves with the object's own, so only a deep cut says it is not the object's. Channels that
    own no surface are not objects and cut nothing.
    """
    return (others <= 0) | (duplicates <= -DUPLICATE_SLACK * step)


def unseen_copy(others: np.ndarray, duplicates: np.ndarray, observed: np.ndarray, step: float) -> np.ndarray:
    """(N,) bool: vertices no camera saw (``observed`` (N,) == 0) within ``COPY_TOLERANCE`` (1) grid
    step of another object's or a duplicate's surface (``others``, ``duplicates`` (N,) their minimum
    SDF): a copy of that surface grown just outside it (the floor under a bed, a wall behind a sofa)."""
    return (np.minimum(others, duplicates) < COPY_TOLERANCE * step) & (observed == 0)


def cut_faces(surface: Surface, drop: np.ndarray) -> tuple[Surface, np.ndarray]:
    """The surface without the faces that touch a vertex of ``drop`` (N,) bool, and the indices of
    the vertices kept (into the old vertices, in the new order). When that would drop every face
    (a barely trained channel whose whole surface lies inside others) the surface is kept whole."""
    keep = ~drop[surface.faces].any(axis=1)
    if not keep.any():
        return surface, np.arange(len(surface.vertices))
    return keep_faces(surface, keep), np.unique(surface.faces[keep])


def drop_unobserved_components(surface: Surface, observed: np.ndarray, agreeing: np.ndarray | None = None) -> Surface:
    """The surface without the connected components the cameras barely saw or the labels seldom
    gave the object's class.

    ``observed`` (N,): per vertex, whether (bool) or in how many training frames (int) it lies on the
    measured depth; a face is observed when one of its vertices is. ``agreeing`` (N,): of those
    observations, how many the training labels gave the object's class there.

    Rule: a component is dropped when under ``MIN_OBSERVED_SHARE`` (10%) of its area is observed,
    or when its observed area is under ``MIN_OBSERVED_AREA`` (0.5) times the best-observed
    component's. With ``agreeing``, the anchor is the component with the most label-confirmed
    observed area (observed area x share of observations that agree), and components whose labels
    agree less than ``MIN_LABEL_SUPPORT`` (0.5) times as often as on the anchor are dropped too; a
    component no observation reached is not judged by labels. The anchor (without labels: the
    best-observed component) is always kept. A surface no camera saw at all is returned as it is.
    """
    labels, face_area = components(surface)
    total = np.bincount(labels, weights=face_area)
    seen = np.bincount(labels, weights=face_area * (observed[surface.faces] > 0).any(axis=1), minlength=len(total))
    if not seen.any():
        return surface
    keep = (seen / np.maximum(total, 1e-12) >= MIN_OBSERVED_SHARE) & (seen >= MIN_OBSERVED_AREA * seen.max())
    anchor = seen.argmax()
    if agreeing is not None:
        vertex_component = np.zeros(len(surface.vertices), dtype=np.int64)
        vertex_component[surface.faces.reshape(-1)] = np.repeat(labels, 3)
        votes = np.bincount(vertex_component, weights=observed, minlength=len(total))
        support = np.bincount(vertex_component, weights=agreeing, minlength=len(total)) / np.maximum(votes, 1)
        if (seen * support).any():
            anchor = (seen * support).argmax()
        keep &= (votes == 0) | (support >= MIN_LABEL_SUPPORT * support[anchor])
    keep[anchor] = True
    return keep_faces(surface, keep[labels])


def clean_components(surface: Surface, min_component: float) -> tuple[Surface, float]:
    """The surface without its connected components under ``min_component`` times the area of the
    largest (which is always kept), and its floater share: the area outside its largest component
    over its whole area."""
    labels, face_area = components(surface)
    total = np.bincount(labels, weights=face_area)
    largest = float(total.max()) if len(total) else 0.0
    cleaned = keep_faces(surface, total[labels] >= min_component * largest)
    kept = float(total[total >= min_component * largest].sum())
    return cleaned, (1.0 - largest / kept) if kept > 0 else 0.0


def is_fragment(surface: Surface, scene_area: float) -> bool:
    """Rule: an object whose surface has under ``MIN_OBJECT_SURFACE`` (2e-4) of the scene mesh's area
    is a fragment, not an object (as in panoptic fusion's minimum segment size)."""
    return area(surface) < MIN_OBJECT_SURFACE * scene_area
