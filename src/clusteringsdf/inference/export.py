"""A trained run's objects for other tools: ``clusteringsdf export --run RUN --format FORMAT``.

Everything comes from the run's meshes (``RUN/meshes``, written by :func:`.mesh.extract_meshes`,
in world coordinates and scene units, metres when the capture has depth; extracted first, into a
temporary folder that is then renamed, when the run has none) and is written in the same world
frame and units, into a temporary folder beside the output
that takes its place when complete (:func:`clusteringsdf.files.staged_folder`). Formats
(:data:`RUN_FORMATS`):

    obj      <id>_<class>.obj + .mtl per object (diffuse colour: the object's instance palette
             colour), scene.obj (field colours per vertex)
    glb      scene.glb: RUN/meshes/scene.glb with each node's id, class and class name in its extras
    ply      scene.ply: the scene mesh with per-vertex field colours, ``instance`` and ``semantic``
    points   points.ply: points sampled uniformly on the scene mesh (seeded), with field colours,
             ``instance`` and ``semantic``
    objects  objects.json: id, channels, class, thing flag, box, centroid and area of every object

Ids: an object's id is its channel (the group's first, as in index.json and the mesh file names);
``instance`` is the id of the thing object whose channel is the scene's arg-min SDF channel at the
point, 0 for the background and stuff. ``semantic`` is that channel's class; where the channel is
the background's (or has no class) it is the semantic head's best stuff class at the point, or the
background channel's voted class for methods without a semantic head, 0 (void) when none is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data import layout
from ..data.mesh_io import read_mesh
from ..errors import ClusteringSDFError, RunError
from ..files import staged_folder
from ..runs import TrainedRun, load_trained_run, resolve_device
from .mesh import ensure_meshes, field_colors
from .point_labels import owner_channels, stuff_classes_at
from .mesh_rules import Surface
from .palette import instance_color

RUN_FORMATS = ("obj", "glb", "ply", "points", "objects")
DEFAULT_POINTS = 200_000
_CHUNK = 65_536  # points per forward pass


@dataclass
class RunMeshes:
    """A trained run and its meshes: ``mesh_dir`` (RUN/meshes) and its ``index`` (index.json)."""

    trained: TrainedRun
    mesh_dir: Path
    index: dict

    def objects(self) -> list[dict]:
        """index.json's objects, by id."""
        return sorted(self.index.get("objects", []), key=lambda entry: int(entry["id"]))

    def scene_mesh(self):
        """The scene mesh with field colours (``scene_color.ply``) as a ``trimesh.Trimesh``."""
        return read_mesh(self.mesh_dir / "scene_color.ply", missing="no scene mesh (the run's field has no surface)")

    def normalised(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) in the model's normalised frame."""
        return self.trained.scene.normalization.apply(np.asarray(points, dtype=np.float64))

    @torch.no_grad()
    def labels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(instance (N,), semantic (N,)) int32 at world points (N, 3); see the module docstring."""
        trained = self.trained
        field = trained.model.field
        owner = owner_channels(trained, self.normalised(points))
        channel_class = trained.method.votes.classes().cpu().numpy().astype(np.int64)
        channel_class[0] = -1
        channel_object = np.zeros(field.channels, dtype=np.int64)
        for entry in self.objects():
            channels = [int(c) for c in entry.get("channels", [entry["id"]])]
            channel_class[channels] = int(entry["class"])
            channel_object[channels] = int(entry["id"]) if entry["thing"] else 0
        semantic = channel_class[owner]
        missing = np.flatnonzero(semantic < 0)
        if len(missing):
            semantic[missing] = self._background_classes(points[missing])
        return channel_object[owner].astype(np.int32), np.maximum(semantic, 0).astype(np.int32)

    def _background_classes(self, points: np.ndarray) -> np.ndarray:
        """(N,) class of background points (N, 3): the semantic head's best observed stuff class,
        or without one the background channel's voted class (-1: none)."""
        classes = stuff_classes_at(self.trained, self.normalised(points))
        return np.where(classes >= 0, classes, int(self.trained.method.votes.classes()[0]))


def write_labelled_ply(path: Path, points: np.ndarray, colors: np.ndarray, labels: tuple[np.ndarray, np.ndarray], *, faces: np.ndarray | None = None) -> None:
    """A binary PLY (plyfile) of points (N, 3) float32 (scene units) with ``red green blue`` (N, 3) uint8
    and int32 ``instance`` and ``semantic`` (N,) each = ``labels``; with ``faces`` (M, 3) a mesh."""
    from plyfile import PlyData, PlyElement

    instance, semantic = labels
    vertex = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                                          ("instance", "i4"), ("semantic", "i4")])
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = colors[:, channel]
    vertex["instance"], vertex["semantic"] = instance, semantic
    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements).write(str(path))


def _write_obj(path: Path, mesh, *, material: tuple[str, np.ndarray] | None = None) -> None:
    """``mesh`` (trimesh) as OBJ at ``path``; with ``material`` (name, RGB uint8 (3,)) its .mtl
    beside it (the mesh takes that diffuse colour), else its vertex colours go into the OBJ."""
    import trimesh
    from trimesh.exchange.obj import export_obj

    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=None if material else mesh.visual.vertex_colors, process=False)
    mesh.metadata["name"] = path.stem
    if material is not None:
        name, rgb = material
        diffuse = np.append(np.asarray(rgb, dtype=np.uint8), 255)
        mesh.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.SimpleMaterial(name=name, diffuse=diffuse))
    text, files = export_obj(mesh, include_normals=False, return_texture=True, mtl_name=f"{path.stem}.mtl")
    path.write_text(text)
    for name, data in files.items():
        (path.parent / name).write_bytes(data)


def export_obj_files(meshes: RunMeshes, folder: Path, **_) -> dict:
    """``<id>_<class>.obj`` + ``.mtl`` per object and ``scene.obj``."""
    for entry in meshes.objects():
        mesh = read_mesh(meshes.mesh_dir / entry["file"], missing="mesh file not found (listed in index.json)")
        stem = Path(entry["file"]).stem
        _write_obj(folder / f"{stem}.obj", mesh, material=(stem, instance_color(np.array([int(entry["id"])]))[0]))
    _write_obj(folder / "scene.obj", meshes.scene_mesh())
    return {"objects": len(meshes.objects())}


def export_glb(meshes: RunMeshes, folder: Path, **_) -> dict:
    """``scene.glb``: the mesher's GLB with ``{"id", "class", "class_name", "thing"}`` in each node's
    extras (the background: id 0, class -1)."""
    import trimesh

    path = meshes.mesh_dir / "scene.glb"
    if not path.is_file():
        raise RunError(f"{path}: not found (meshes of an older version? run `clusteringsdf mesh --run {meshes.trained.run_dir}` again)")
    source = trimesh.load(path, force="scene", process=False)
    entries = {Path(entry["file"]).stem: entry for entry in meshes.objects()}
    scene = trimesh.Scene()
    for node in source.graph.nodes_geometry:
        entry = entries.get(node)
        if entry is None:
            extras = {"id": 0, "class": -1, "class_name": node, "thing": False}
        else:
            extras = {"id": int(entry["id"]), "class": int(entry["class"]), "class_name": str(entry["class_name"]), "thing": bool(entry["thing"])}
        matrix, geometry = source.graph[node]
        scene.add_geometry(source.geometry[geometry], node_name=node, geom_name=geometry, transform=matrix, metadata=extras)
    (folder / "scene.glb").write_bytes(scene.export(file_type="glb"))
    return {"objects": len(entries)}


def export_ply(meshes: RunMeshes, folder: Path, **_) -> dict:
    """``scene.ply``: the scene mesh, field colours, per-vertex ``instance`` and ``semantic``."""
    mesh = meshes.scene_mesh()
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
    write_labelled_ply(folder / "scene.ply", vertices, colors, meshes.labels(vertices), faces=np.asarray(mesh.faces))
    return {"vertices": len(vertices)}


def export_points(meshes: RunMeshes, folder: Path, *, points: int = DEFAULT_POINTS, seed: int = 0) -> dict:
    """``points.ply``: ``points`` points drawn uniformly by area on the scene mesh (``seed``), with
    the field's colour seen along the face normal, ``instance`` and ``semantic``."""
    import trimesh

    mesh = meshes.scene_mesh()
    samples, face_index = trimesh.sample.sample_surface(mesh, points, seed=seed)
    normals = np.asarray(mesh.face_normals)[face_index]
    surface = Surface(meshes.normalised(samples), np.zeros((0, 3), dtype=np.int64), normals)
    colors = field_colors(meshes.trained.model, surface, chunk=_CHUNK)
    write_labelled_ply(folder / "points.ply", samples, colors, meshes.labels(samples))
    return {"points": len(samples)}


def export_objects(meshes: RunMeshes, folder: Path, **_) -> dict:
    """``objects.json``: per object its id, channels, class, class name, thing flag, axis-aligned box
    (``bbox_min``, ``bbox_max``), area-weighted surface ``centroid`` and surface ``area`` (m^2)."""
    objects = []
    for entry in meshes.objects():
        mesh = read_mesh(meshes.mesh_dir / entry["file"], missing="mesh file not found (listed in index.json)")
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        objects.append({
            "id": int(entry["id"]), "channels": [int(c) for c in entry.get("channels", [entry["id"]])], "class": int(entry["class"]),
            "class_name": str(entry["class_name"]), "thing": bool(entry["thing"]),
            "bbox_min": np.round(vertices.min(0), 5).tolist(), "bbox_max": np.round(vertices.max(0), 5).tolist(),
            "centroid": np.round(np.asarray(mesh.centroid), 5).tolist(), "area": round(float(mesh.area), 6),
        })
    scene = meshes.trained.scene
    data = {
        "run": str(meshes.trained.run_dir.resolve()), "scene": str(Path(scene.root).resolve()), "meshes": str(meshes.mesh_dir.resolve()),
        "mesh_resolution": meshes.index.get("resolution"), "frame": "world (the frame of the scene's poses)",
        "units": layout.scene_units(Path(scene.root)) + "; area in square units", "objects": objects,
    }
    (folder / "objects.json").write_text(json.dumps(data, indent=2) + "\n")
    return {"objects": len(objects)}


WRITERS = {"obj": export_obj_files, "glb": export_glb, "ply": export_ply, "points": export_points, "objects": export_objects}


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    force: bool = False,
    resolution: int = 256,
    device: str = "auto",
    points: int = DEFAULT_POINTS,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Write the trained run ``run_dir`` in format ``fmt`` (:data:`RUN_FORMATS`) to ``out`` (default
    RUN/export/<fmt>), completely or not at all; returns a summary (format, folder and counts).

    resolution: grid resolution when the run's meshes must be extracted first; points, seed: the
    ``points`` format's sample count and random seed.

    Raises:
        ClusteringSDFError / RunError / DataError: one line (an unknown format, a missing run, an
            ``out`` that holds files without ``force``: nothing is written then).
    """
    if fmt not in WRITERS:
        raise ClusteringSDFError(f"--format: '{fmt}' is not a run format (one of {', '.join(RUN_FORMATS)})")
    if resolution < 8:
        raise ClusteringSDFError(f"--resolution: expected at least 8, got {resolution}")
    if points < 1:
        raise ClusteringSDFError(f"--points: expected at least 1, got {points}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found")
    out = Path(out) if out is not None else run_dir / "export" / fmt
    with staged_folder(out, force=force, keep=[run_dir, run_dir / "meshes"]) as folder:
        trained = load_trained_run(run_dir, resolve_device(device))
        meshes = RunMeshes(trained, run_dir / "meshes", json.loads((ensure_meshes(trained, run_dir / "meshes", resolution, log=log) / "index.json").read_text()))
        summary = WRITERS[fmt](meshes, folder, points=points, seed=seed)
    return {"format": fmt, "folder": str(out), **summary}
