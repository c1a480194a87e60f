"""Surface meshes of a trained run: the scene (min over channels) and every object channel.

Memory stays bounded at any resolution: the scene SDF and its arg-min channel are evaluated in
chunks on the full grid (two bytes + one float per voxel), and each object channel is then
evaluated only inside the (padded) box of the voxels it owns. Meshes are written in world
coordinates (metres) as PLY with vertex colours:

    DIR/scene_instance.ply   scene mesh, each vertex coloured by the instance (channel) nearest to it
    DIR/scene_class.ply      same mesh coloured by class
    DIR/objects/<id>_<class>.ply   one mesh per object channel that owns pixels, coloured by instance
    DIR/objects/<id>_<class>_class.ply  the same coloured by class
    DIR/index.json           id, class, vertex/face counts, bounding box of every object
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.mesh_io import write_mesh
from ..files import write_json_atomic
from ..model import Model
from ..runs import TrainedRun
from .palette import class_color, instance_color


@dataclass
class Grid:
    """A regular grid over a box: ``shape`` (nx, ny, nz) vertices, ``origin`` (3,), ``step`` (scalar)."""

    origin: np.ndarray
    step: float
    shape: tuple[int, int, int]

    @classmethod
    def over(cls, bbox: np.ndarray, resolution: int) -> "Grid":
        extent = bbox[1] - bbox[0]
        step = float(extent.max()) / (resolution - 1)
        shape = tuple(int(np.ceil(e / step)) + 1 for e in extent)
        return cls(origin=bbox[0].astype(np.float64), step=step, shape=shape)

    def points(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
        """Vertices of the sub-grid [lo, hi) in x-major (x, y, z) order: (n, 3)."""
        axes = [self.origin[a] + self.step * np.arange(lo[a], hi[a]) for a in range(3)]
        x, y, z = np.meshgrid(*axes, indexing="ij")
        return np.stack([x, y, z], -1).reshape(-1, 3)


@torch.no_grad()
def _evaluate(model: Model, points: np.ndarray, chunk: int, channel: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Scene SDF and arg-min channel at points (n, 3), or one channel's SDF; chunked."""
    device = model.bbox.device
    values, owners = [], []
    for start in range(0, points.shape[0], chunk):
        p = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=device)
        sdf = model.field.geometry(p).sdf
        if channel is None:
            minimum, argmin = sdf.min(dim=-1)
            values.append(minimum.cpu().numpy())
            owners.append(argmin.to(torch.int16).cpu().numpy())
        else:
            values.append(sdf[:, channel].cpu().numpy())
    return np.concatenate(values).astype(np.float32), (np.concatenate(owners) if owners else None)


def _marching_cubes(volume: np.ndarray, grid: Grid, lo: tuple[int, int, int], mask: np.ndarray | None = None):
    from skimage.measure import marching_cubes

    if volume.min() > 0 or volume.max() < 0 or min(volume.shape) < 2:
        return None
    if mask is not None and not mask.any():
        return None
    try:
        verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(grid.step,) * 3, mask=mask, allow_degenerate=False)
    except RuntimeError:  # the zero level set lies only in masked-out cells
        return None
    verts = verts + grid.origin + grid.step * np.asarray(lo)
    return verts, faces


def extract_meshes(
    trained: TrainedRun,
    out_dir: Path,
    resolution: int = 256,
    objects: list[int] | None = None,
    chunk: int = 262_144,
    mask_spheres: bool = False,
    class_names: dict[int, str] | None = None,
) -> dict:
    """Extract and write the scene and object meshes; returns the index written to index.json.

    objects: channel ids to extract (default: every object channel that owns pixels).
    mask_spheres: only mesh cells inside the union of the run's sphere cloud (sphere-guided runs).
    """
    model, scene = trained.model, trained.scene
    model.eval()
    bbox = model.bbox.cpu().numpy().astype(np.float64)
    grid = Grid.over(bbox, resolution)
    nx, ny, nz = grid.shape
    scene_sdf = np.empty(grid.shape, dtype=np.float32)
    owner = np.empty(grid.shape, dtype=np.int16)
    for i in range(0, nx, max(1, chunk // (ny * nz))):  # x-slabs keep memory bounded
        hi = min(nx, i + max(1, chunk // (ny * nz)))
        values, owners = _evaluate(model, grid.points((i, 0, 0), (hi, ny, nz)), chunk)
        scene_sdf[i:hi] = values.reshape(hi - i, ny, nz)
        owner[i:hi] = owners.reshape(hi - i, ny, nz)
    mask = None
    if mask_spheres and model.spheres is not None:
        mask = _sphere_mask(model, grid)

    to_world = scene.normalization.invert
    classes = trained.method.votes.classes().cpu().numpy()
    names = class_names or scene.classes.names
    index: dict = {"resolution": resolution, "grid_shape": list(grid.shape), "objects": []}
    surface = _marching_cubes(scene_sdf, grid, (0, 0, 0), mask)
    if surface is not None:
        verts, faces = surface
        cell = np.clip(np.round((verts - grid.origin) / grid.step).astype(int), 0, np.array(grid.shape) - 1)
        vertex_owner = owner[cell[:, 0], cell[:, 1], cell[:, 2]].astype(int)
        world = to_world(verts)
        write_mesh(out_dir / "scene_instance.ply", world, faces, instance_color(vertex_owner))
        write_mesh(out_dir / "scene_class.ply", world, faces, class_color(np.where(vertex_owner > 0, classes[vertex_owner], -1)))
        index["scene"] = {"vertices": int(len(verts)), "faces": int(len(faces))}

    wanted = trained.method.votes.owned() if objects is None else [c for c in objects if 0 < c < model.field.channels]
    pad = 3
    for channel in wanted:
        cells = np.argwhere((owner == channel) & (np.abs(scene_sdf) < 2 * grid.step))
        if len(cells) == 0:
            continue
        lo = tuple(int(v) for v in np.maximum(cells.min(0) - pad, 0))
        hi = tuple(int(v) for v in np.minimum(cells.max(0) + pad + 1, grid.shape))
        values, _ = _evaluate(model, grid.points(lo, hi), chunk, channel)
        volume = values.reshape(tuple(h - l for l, h in zip(lo, hi)))
        sub_mask = None if mask is None else mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        surface = _marching_cubes(volume, grid, lo, sub_mask)
        if surface is None:
            continue
        verts, faces = surface
        world = to_world(verts)
        class_id = int(classes[channel])
        name = names.get(class_id, f"class{class_id}") if class_id >= 0 else "unknown"
        stem = f"{channel:02d}_{name}"
        write_mesh(out_dir / "objects" / f"{stem}.ply", world, faces, instance_color(np.full(len(verts), channel)))
        write_mesh(out_dir / "objects" / f"{stem}_class.ply", world, faces, class_color(np.full(len(verts), class_id)))
        index["objects"].append(
            {
                "id": channel,
                "class": class_id,
                "class_name": name,
                "thing": bool(scene.classes.is_thing(class_id)),
                "file": f"objects/{stem}.ply",
                "vertices": int(len(verts)),
                "faces": int(len(faces)),
                "bbox_min": np.round(world.min(0), 4).tolist(),
                "bbox_max": np.round(world.max(0), 4).tolist(),
            }
        )
    write_json_atomic(out_dir / "index.json", index)
    return index


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
