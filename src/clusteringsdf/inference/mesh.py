"""Surface meshes of a trained run: the scene (minimum over channels) and one mesh per object.

Extraction: the scene grid and the objects among the channels come from :mod:`.channels` (bounded
memory at any resolution: each object is evaluated only inside the padded box of the grid cells its
channels own). An object's mesh is the zero level of its channel (the group's channel that owns
most surface), cleaned by the rules of :mod:`.mesh_rules`, which judge what no camera saw with the
training frames' depth and labels (an injected ``observer`` in tests). ``watertight`` keeps the
channel's whole surface, closed where it meets its box, so that every component is closed.

Written in world coordinates, in scene units (metres when the capture has depth or metric poses):

    DIR/scene_instance.ply, scene_class.ply, scene_color.ply   the scene mesh coloured by instance
                             (the channel that owns each vertex), by class, by the field's colour
    DIR/objects/<id>_<class>.ply, _class.ply, _color.ply       one mesh per object
    DIR/scene.glb            one node per object, named <id>_<class>, and "background", field colours
    DIR/index.json           id, channels, class, vertex/face counts, bounding box, floater share of every object

Field colours come from the colour network at each vertex, looking at the surface along its normal.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ..data.mesh_io import write_mesh
from ..data.visibility import VisibilityCuller
from ..errors import RunError
from ..files import atomic_write, write_json_atomic
from ..model import Model, map_chunks
from ..runs import TrainedRun
from . import mesh_rules
from .channels import Grid, SceneChannels, analyse_channels
from .mesh_rules import Surface
from .palette import class_color, instance_color

OBJECT_PAD = 3  # grid cells around an object's owned cells that are evaluated for its surface
OBJECT_REACH = 4.0  # grid steps: an object's SDF is evaluated where the scene SDF is below this, inside its box


class Observer(Protocol):
    """What the cleaning rules know of the cameras: ``counts(points_world (N, 3), class_id)`` ->
    (observed (N,): in how many training frames each point lies on the measured depth, agreeing
    (N,): in how many of those the labels say ``class_id``, or None). :class:`VisibilityCuller` is one."""

    def counts(self, points: np.ndarray, label: int | None = None) -> tuple[np.ndarray, np.ndarray | None]: ...


def _marching_cubes(volume: np.ndarray, grid: Grid, lo: tuple[int, int, int], *, mask: np.ndarray | None = None, close: bool = False) -> Surface | None:
    """The zero level of a sub-volume starting at grid vertex ``lo``; ``close`` pads it with an outside
    border so the surface is closed where it meets the sub-volume's box."""
    from skimage.measure import marching_cubes

    if close:
        volume = np.pad(volume, 1, constant_values=max(float(volume.max()), grid.step))
        mask = None if mask is None else np.pad(mask, 1, constant_values=False)
        lo = tuple(v - 1 for v in lo)
    if volume.min() > 0 or volume.max() < 0 or min(volume.shape) < 2:
        return None
    if mask is not None and not mask.any():
        return None
    try:
        verts, faces, normals, _ = marching_cubes(volume, level=0.0, spacing=(grid.step,) * 3, mask=mask, allow_degenerate=False)
    except RuntimeError:  # the zero level set lies only in masked-out cells
        return None
    return Surface(verts + grid.origin + grid.step * np.asarray(lo), faces, -normals)  # skimage's point down the SDF



@torch.no_grad()
def field_colors(model: Model, surface: Surface, chunk: int = 65536) -> np.ndarray:
    """uint8 (N, 3) colours of the colour network at the vertices, seen along their normals."""
    if len(surface.vertices) == 0:
        return np.zeros((0, 3), np.uint8)
    rgb = map_chunks(model.field.surface_color, surface.vertices, surface.normals, chunk=chunk, device=model.bbox.device)
    return np.round(rgb.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)


def _glb_scene(parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]):
    """A trimesh scene with one named node per part (name, world vertices, faces, uint8 colours)."""
    import trimesh

    scene = trimesh.Scene()
    for name, vertices, faces, colors in parts:
        mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False, validate=False)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene



def training_observer(trained: TrainedRun) -> VisibilityCuller | None:
    """The training frames' depth and thing labels (the run's label source) as an :class:`Observer`;
    None when the scene has no depth, or its folder is not found (then nothing is judged by
    observation, and a note says so)."""
    source = trained.config.data.labels
    if not trained.scene_found:
        print(f"note: {trained.scene.root}: the run's scene is not there; meshes are cleaned without the cameras' observations "
              "(pass --scene with the scene folder)", file=sys.stderr)
        return None
    scene = trained.load_frames({"depth", source})
    if scene.depths is None:
        return None
    train = scene.split("train")
    semantic, instance = (scene.gt_semantics, scene.gt_instance) if source == "gt" else (scene.m2f_semantics, scene.m2f_instance)
    labels = None if semantic is None else np.where(instance[train] > 0, semantic[train], -1)
    poses = scene.normalization.pose_to_world(scene.poses[train].astype(np.float64))
    return VisibilityCuller(poses, scene.intrinsics[train].astype(np.float64), scene.depths[train], labels=labels)


class _MeshWriter:
    """Writes the meshes of one extraction and collects index.json and the GLB's parts."""

    def __init__(self, trained: TrainedRun, out_dir: Path, index: dict) -> None:
        self.model, self.scene = trained.model, trained.scene
        self.classes = trained.method.votes.classes().cpu().numpy()
        self.out_dir = out_dir
        self.index = index
        self.glb_parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def scene_mesh(self, surface: Surface, owner: np.ndarray, grid: Grid) -> None:
        """The scene mesh coloured three ways; its background faces go to the GLB."""
        cell = np.clip(np.round((surface.vertices - grid.origin) / grid.step).astype(int), 0, np.array(grid.shape) - 1)
        vertex_owner = owner[cell[:, 0], cell[:, 1], cell[:, 2]].astype(int)
        world = self.scene.normalization.invert(surface.vertices)
        colors = field_colors(self.model, surface)
        write_mesh(self.out_dir / "scene_instance.ply", world, surface.faces, instance_color(vertex_owner))
        write_mesh(self.out_dir / "scene_class.ply", world, surface.faces, class_color(np.where(vertex_owner > 0, self.classes[vertex_owner], -1)))
        write_mesh(self.out_dir / "scene_color.ply", world, surface.faces, colors)
        self.index["scene"] = {"vertices": int(len(world)), "faces": int(len(surface.faces))}
        background = (vertex_owner[surface.faces] == 0).all(axis=1)
        if background.any():
            self.glb_parts.append(("background", world, surface.faces[background], colors))

    def object_mesh(self, group: list[int], surface: Surface, floaters: float) -> None:
        """One object's three meshes, its GLB node and its index.json entry."""
        channel, class_id = group[0], int(self.classes[group[0]])
        world = self.scene.normalization.invert(surface.vertices)
        name = self.scene.classes.names.get(class_id, f"class{class_id}") if class_id >= 0 else "unknown"
        stem = f"{channel:02d}_{name}"
        colors = field_colors(self.model, surface)
        write_mesh(self.out_dir / "objects" / f"{stem}.ply", world, surface.faces, instance_color(np.full(len(world), channel)))
        write_mesh(self.out_dir / "objects" / f"{stem}_class.ply", world, surface.faces, class_color(np.full(len(world), class_id)))
        write_mesh(self.out_dir / "objects" / f"{stem}_color.ply", world, surface.faces, colors)
        self.glb_parts.append((stem, world, surface.faces, colors))
        self.index["objects"].append({
            "id": channel, "channels": group, "class": class_id, "class_name": name, "thing": bool(self.scene.classes.is_thing(class_id)),
            "file": f"objects/{stem}.ply", "vertices": int(len(world)), "faces": int(len(surface.faces)), "floater_share": round(floaters, 4),
            "bbox_min": np.round(world.min(0), 4).tolist(), "bbox_max": np.round(world.max(0), 4).tolist(),
        })

    def finish(self) -> dict:
        """The GLB and index.json (written last: a folder with index.json is complete)."""
        if self.glb_parts:
            glb = _glb_scene(self.glb_parts)
            atomic_write(self.out_dir / "scene.glb", lambda tmp: tmp.write_bytes(glb.export(file_type="glb")))
            self.index["glb"] = "scene.glb"
        write_json_atomic(self.out_dir / "index.json", self.index)
        return self.index


@torch.no_grad()
def _object_fields(model: Model, points: np.ndarray, group: list[int], *, neighbours: np.ndarray | None, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """At points (n, 3): the SDF of the object's channel (``group[0]``) (n,), and (n, 2) the minimum
    SDF of the other channels where ``neighbours`` (C,) bool is set (default: all), and that of the
    group's duplicates (inf without); <= 0: the point lies inside one of them."""
    among = np.ones(model.field.channels, dtype=bool) if neighbours is None else neighbours.copy()
    among[group] = False
    device = model.bbox.device
    sets = [torch.as_tensor(np.flatnonzero(among), device=device), torch.as_tensor(group[1:], dtype=torch.long, device=device)]

    def evaluate(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sdf = model.field.geometry(p).sdf
        inf = torch.full_like(sdf[:, 0], torch.inf)
        return sdf[:, group[0]], torch.stack([sdf[:, k].min(dim=-1).values if len(k) else inf for k in sets], dim=-1)

    own, others = map_chunks(evaluate, points, chunk=chunk, device=device)
    return own.cpu().numpy().astype(np.float32), others.cpu().numpy()


def _object_surface(
    model: Model, channels: SceneChannels, group: list[int], *, chunk: int, mask: np.ndarray | None, watertight: bool
) -> Surface | None:
    """The zero level of the group's channel inside the padded box of the cells the group owns."""
    grid = channels.grid
    cells = np.argwhere(np.isin(channels.owner, group) & channels.near_surface)
    lo = tuple(int(v) for v in np.maximum(cells.min(0) - OBJECT_PAD, 0))
    hi = tuple(int(v) for v in np.minimum(cells.max(0) + OBJECT_PAD + 1, grid.shape))
    box = tuple(slice(l, h) for l, h in zip(lo, hi))
    # The object's SDF is at least the scene's: where the scene lies OBJECT_REACH steps outside every
    # surface, so does the object, and the scene's value stands in for it (no edge it crosses ends there).
    values = channels.scene_sdf[box].copy()
    near = values < OBJECT_REACH * grid.step
    values[near] = _object_fields(model, grid.points_at(np.argwhere(near) + np.asarray(lo)), group, neighbours=None, chunk=chunk)[0]
    return _marching_cubes(values, grid, lo, mask=None if mask is None else mask[box], close=watertight)


def _cleaned(
    trained: TrainedRun, channels: SceneChannels, group: list[int], surface: Surface, *, observer: Observer | None, class_id: int,
    chunk: int, watertight: bool, min_component: float,
) -> tuple[Surface, float] | None:
    """The object's surface after the cleaning rules (:mod:`.mesh_rules`) and its floater share;
    None when no camera saw any of it."""
    counts = None
    if observer is not None:
        counts = observer.counts(trained.scene.normalization.invert(surface.vertices), class_id)
    if not watertight:
        others, duplicates = _object_fields(trained.model, surface.vertices, group, neighbours=channels.owns_surface, chunk=chunk)[1].T
        drop = mesh_rules.inside_another_object(others, duplicates, channels.grid.step)
        if counts is not None:
            drop |= mesh_rules.unseen_copy(others, duplicates, counts[0], channels.grid.step)
        surface, kept = mesh_rules.cut_faces(surface, drop)
        counts = None if counts is None else tuple(None if c is None else c[kept] for c in counts)
    if counts is not None:
        if not counts[0].any():  # wholly where no camera looked (behind a wall, under the floor): not an object
            return None
        surface = mesh_rules.drop_unobserved_components(surface, *counts)
    return mesh_rules.clean_components(surface, min_component)


def extract_meshes(
    trained: TrainedRun,
    out_dir: Path,
    resolution: int = 256,
    objects: list[int] | None = None,
    *,
    chunk: int = 262_144,
    mask_spheres: bool = False,
    watertight: bool = False,
    min_component: float = 0.05,
    observer: Observer | None | str = "training frames",
) -> dict:
    """Extract and write the scene and object meshes (see the module docstring); returns the index
    written to index.json.

    objects: channel ids to extract (default: every object channel with a class); channels that own
        no surface, and meshes left as fragments (:func:`mesh_rules.is_fragment`), are skipped.
        Channels that hold one object between them (:func:`.channels.duplicate_groups`) are meshed
        as one, under the id of the one owning most surface; index.json lists them as ``channels``.
    mask_spheres: only mesh cells inside the union of the run's sphere cloud (sphere-guided runs).
    watertight: close object surfaces where they meet their box.
    min_component: object components smaller than this share of the object's largest are dropped.
    observer: what the cameras saw (:class:`Observer`); by default the run's training frames
        (:func:`training_observer`), None to judge nothing by observation.
    """
    model = trained.model
    model.eval()
    if observer == "training frames":
        observer = training_observer(trained)
    classes = trained.method.votes.classes().cpu().numpy()
    if objects is None:  # every channel with a class (its votes' share is no guide: small objects get few)
        objects = [c for c in range(1, model.field.channels) if classes[c] >= 0]
    requested = {c for c in objects if 0 < c < model.field.channels}
    channels = analyse_channels(model, resolution, classes, chunk, requested=requested)
    mask = _sphere_mask(model, channels.grid) if mask_spheres and model.spheres is not None else None
    writer = _MeshWriter(trained, out_dir, {"resolution": resolution, "grid_shape": list(channels.grid.shape), "watertight": watertight, "objects": []})
    scene_surface = _marching_cubes(channels.scene_sdf, channels.grid, (0, 0, 0), mask=mask)
    if scene_surface is not None:
        writer.scene_mesh(scene_surface, channels.owner, channels.grid)
    scene_area = 0.0 if scene_surface is None else mesh_rules.area(scene_surface)
    for group in channels.groups:
        if not set(group) & requested:
            continue
        surface = _object_surface(model, channels, group, chunk=chunk, mask=mask, watertight=watertight)
        cleaned = None if surface is None else _cleaned(
            trained, channels, group, surface, observer=observer, class_id=int(classes[group[0]]), chunk=chunk, watertight=watertight,
            min_component=min_component,
        )
        if cleaned is not None and not mesh_rules.is_fragment(cleaned[0], scene_area):
            writer.object_mesh(group, *cleaned)
    return writer.finish()


def ensure_meshes(trained: TrainedRun, mesh_dir: Path, resolution: int, *, log: Callable[[str], None] = print) -> Path:
    """``mesh_dir`` (RUN/meshes) with its index.json; extracted at ``resolution`` (into a temporary
    folder, then renamed) when absent."""
    if (mesh_dir / "index.json").is_file():
        return mesh_dir
    if mesh_dir.exists() and any(mesh_dir.iterdir()):
        raise RunError(
            f"{mesh_dir}: holds no index.json (an unfinished `clusteringsdf mesh`?); remove the folder or run "
            f"`clusteringsdf mesh --run {mesh_dir.parent}`"
        )
    log(f"{mesh_dir.parent}: no meshes yet, extracting them at resolution {resolution} ...")
    tmp = mesh_dir.with_name(f".{mesh_dir.name}.tmp-{os.getpid()}")
    try:
        extract_meshes(trained, tmp, resolution=resolution)
        if mesh_dir.exists():
            mesh_dir.rmdir()  # empty, checked above
        tmp.rename(mesh_dir)
    except OSError as exc:
        raise RunError(f"{mesh_dir}: cannot write the meshes ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return mesh_dir


def _sphere_mask(model: Model, grid: Grid) -> np.ndarray:
    """Grid vertices inside the sphere union, eroded by one cell so only full cells are meshed."""
    from scipy.ndimage import binary_erosion

    nx, ny, nz = grid.shape
    mask = np.empty(grid.shape, dtype=bool)
    device = model.bbox.device
    for i in range(nx):
        points = torch.as_tensor(grid.points((i, 0, 0), (i + 1, ny, nz)), dtype=torch.float32, device=device)
        mask[i] = model.spheres.contains(points).cpu().numpy().reshape(ny, nz)
    return binary_erosion(mask, iterations=1, border_value=0)
