"""Surface meshes of a trained run: the scene (min over channels) and every object channel.

Memory stays bounded at any resolution: the scene SDF and its arg-min channel are evaluated in
chunks on the full grid (two bytes + one float per voxel), and each object channel is then
evaluated only inside the (padded) box of the voxels it owns.

Object meshes are ownership-aware: channel c's mesh is the zero level of s_c, kept only where no
other channel contains it (every other s_k > 0 at the face's three vertices, over the channels
that own some of the scene's surface; a channel whose whole surface lies inside others, as in
barely trained runs, keeps it all). Channels are free
to put surfaces anywhere they are never rendered, and do: copies of a neighbour's surface that
coincide with it, and shells buried in the floor or a wall. Those are the faces inside another
channel; dropping them raised the mean object F-score on the medium-noise room from 0.62 to 0.74
(cutting the channel's volume instead, ``max(s_c, -min_k s_k)``, shattered it into hundreds of
pieces: object interiors, never observed, are often inside other channels). When the scene has
depth, what no camera saw is judged too (see :func:`drop_unobserved_components`):

* unseen faces within ``COPY_TOLERANCE`` grid steps of another channel's surface are copies of it
  (the floor under a bed, a wall behind a sofa, grown just outside them). Only channels that own
  some of the scene's surface count: duplicates a channel holds hidden just inside an object are
  not neighbours (counting them cut every unseen face of a bag whose surface sat a few centimetres
  off the measured depth, and the bag lost its mesh);
* connected components the cameras barely observed are dropped (shells grown under the floor or
  in a corner), and so are components with less observed area than ``MIN_OBSERVED_AREA`` of the
  best-observed one (a blob around a neighbour, half of a second object sharing the channel);
* then the small ones (under ``min_component`` of the object's largest one); the largest is always
  kept, and an object left with under ``MIN_OBJECT_SURFACE`` of the scene's area is a fragment;
  one no camera saw any of is not an object at all.

On the medium-noise room these rules took the largest floater share from 0.47 to 0 and the
mean object F-score of one run from 0.67 to 0.70 (the same 8 objects matched).

Channels of one class that hold one object between them (:func:`duplicate_groups`) are meshed
as one: trained runs hold some objects twice (a bag seen as two segments, each channel the scene
minimum on interleaved patches of one surface), and meshed apart each copy kept fragments. The
object is the surface of its channel that owns most, cut where a duplicate contains it more than
``DUPLICATE_SLACK`` grid steps deep, with unseen faces near a duplicate's surface dropped as copies.
Components the training labels seldom give the object's class are dropped (see
:func:`drop_unobserved_components`). With both, three runs of the medium-noise room matched 10/10
objects (8/10 before on one) with no floaters (0.36 and 0.47 before on two), mean object F-score
0.672/0.822/0.818 -> 0.835/0.884/0.864.
``watertight`` keeps the channel's whole surface, closed where it meets its box, so that every
component is closed (the ownership cut would open it).

Meshes are written in world coordinates (metres):

    DIR/scene_instance.ply, scene_class.ply, scene_color.ply   the scene mesh coloured by instance
                             (the channel that owns each vertex), by class, by the field's colour
    DIR/objects/<id>_<class>.ply, _class.ply, _color.ply       one mesh per object channel with a class
    DIR/scene.glb            one node per object, named <id>_<class>, and "background", field colours
    DIR/index.json           id, class, vertex/face counts, bounding box, floater share of every object

Field colours come from the colour network at each vertex, looking at the surface along its normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..data.mesh_io import write_mesh
from ..data.visibility import VisibilityCuller
from ..files import atomic_write, write_json_atomic
from ..model import Model
from ..runs import TrainedRun, load_run_scene
from .palette import class_color, instance_color


MIN_OBSERVED_SHARE = 0.1  # object mesh components with less of their area observed are dropped
MIN_OBSERVED_AREA = 0.5  # and those with less observed area than this share of the best-observed one's
MIN_LABEL_SUPPORT = 0.5  # and those labelled the object's class under this share as often as the best-confirmed one
COPY_TOLERANCE = 1.0  # unobserved faces closer than this many grid steps to another channel's surface are dropped
MIN_OBJECT_SURFACE = 2e-4  # object meshes with less area than this share of the scene's are fragments, not written
DUPLICATE_SURFACE = 0.8  # a channel joins another of its class whose surface passes through this share of what it owns
DUPLICATE_NEAR = 0.5  # and this share of what it owns lies within DUPLICATE_CELLS grid cells of what the other owns
DUPLICATE_CELLS = 4.0
DUPLICATE_SLACK = 1.0  # an object's faces are cut where a duplicate of it contains them over this many grid steps deep


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

    def points_at(self, cells: np.ndarray) -> np.ndarray:
        """Vertices at integer grid indices (n, 3) -> (n, 3)."""
        return self.origin + self.step * cells


@dataclass
class Surface:
    """A triangle mesh in normalised coordinates: vertices (N, 3), faces (M, 3), outward vertex normals (N, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray


@torch.no_grad()
def _evaluate(
    model: Model, points: np.ndarray, chunk: int, channels: list[int] | None = None, neighbours: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """At points (n, 3), chunked: the scene SDF and its arg-min channel, or for the object of
    ``channels`` (its channel, then the duplicates grouped with it) the channel's SDF and (n, 2)
    the minimum SDF of the other channels where ``neighbours`` (C,) bool is set (default: all) and
    that of its duplicates (inf without); <= 0: the point lies inside one of them."""
    device = model.bbox.device
    if channels is not None:
        among = np.ones(model.field.channels, dtype=bool) if neighbours is None else neighbours.copy()
        among[channels] = False
        sets = [torch.as_tensor(np.flatnonzero(among), device=device), torch.as_tensor(channels[1:], dtype=torch.long, device=device)]
    values, extras = [], []
    for start in range(0, points.shape[0], chunk):
        p = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=device)
        sdf = model.field.geometry(p).sdf
        if channels is None:
            minimum, argmin = sdf.min(dim=-1)
            values.append(minimum.cpu().numpy())
            extras.append(argmin.to(torch.int16).cpu().numpy())
        else:
            inf = torch.full_like(sdf[:, 0], torch.inf)
            others = [sdf[:, k].min(dim=-1).values if len(k) else inf for k in sets]  # neighbours, duplicates
            values.append(sdf[:, channels[0]].cpu().numpy())
            extras.append(torch.stack(others, dim=-1).cpu().numpy())
    return np.concatenate(values).astype(np.float32), np.concatenate(extras)


@torch.no_grad()
def duplicate_groups(
    model: Model, grid: Grid, owner: np.ndarray, near_surface: np.ndarray, channels: list[int], classes: np.ndarray, chunk: int,
    max_cells: int = 400_000,
) -> list[list[int]]:
    """``channels`` grouped into objects. Channel c joins channel k of its class that owns more of
    the scene's surface when, over the surface cells c owns (``owner`` and ``near_surface``: the
    grid's arg-min channel and band), k's zero level passes through ``DUPLICATE_SURFACE`` or more of
    them and ``DUPLICATE_NEAR`` or more lie within ``DUPLICATE_CELLS`` cells of a cell k owns (of the
    candidates, the k nearest so). One object held by two channels (a bag seen as two segments) has
    two near-identical surfaces that interleave: each channel is the scene minimum on patches next to
    the other's, and meshed apart each kept fragments. Channels also hide copies of neighbours (every
    chair channel of a table's set can hold all of them), so coincident surfaces alone would join
    two chairs; what each owns, and where, tells them apart. Groups are ordered by owned surface,
    largest first, within and across."""
    cells = np.argwhere(near_surface & np.isin(owner, channels))
    if len(cells) > max_cells:
        cells = cells[:: int(np.ceil(len(cells) / max_cells))]
    owned_by = owner[cells[:, 0], cells[:, 1], cells[:, 2]]
    points = grid.points_at(cells)
    on = []
    for start in range(0, len(points), chunk):
        p = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=model.bbox.device)
        on.append((model.field.geometry(p).sdf[:, channels].abs() < 2 * grid.step).cpu().numpy())
    on_surface = np.concatenate(on) if on else np.zeros((0, len(channels)), dtype=bool)
    count = {c: int((owned_by == c).sum()) for c in channels}
    trees = {c: cKDTree(cells[owned_by == c]) for c in channels if count[c]}
    parent = {c: c for c in channels}
    for c in channels:
        mine = owned_by == c
        if not mine.any():
            continue
        best, best_near = None, DUPLICATE_NEAR
        for j, k in enumerate(channels):
            if k == c or classes[k] != classes[c] or (count[k], -k) <= (count[c], -c) or on_surface[mine, j].mean() < DUPLICATE_SURFACE:
                continue
            distance, _ = trees[k].query(cells[mine], distance_upper_bound=DUPLICATE_CELLS)
            near = float(np.isfinite(distance).mean())
            if near >= best_near:
                best, best_near = k, near
        if best is not None:
            parent[c] = best

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    groups: dict[int, list[int]] = {}
    for c in sorted(channels, key=lambda c: (-count[c], c)):
        groups.setdefault(root(c), []).append(c)
    return sorted(groups.values(), key=lambda g: (-count[g[0]], g[0]))


def _marching_cubes(volume: np.ndarray, grid: Grid, lo: tuple[int, int, int], mask: np.ndarray | None = None, close: bool = False) -> Surface | None:
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


def _keep_faces(surface: Surface, keep: np.ndarray) -> Surface | None:
    """The faces where ``keep`` (M,) is true and the vertices they use; None when none is kept."""
    if not keep.any():
        return None
    used = np.unique(surface.faces[keep])
    remap = np.full(len(surface.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Surface(surface.vertices[used], remap[surface.faces[keep]], surface.normals[used])


def _components(surface: Surface) -> tuple[np.ndarray, np.ndarray]:
    """Connected component of every face (M,) and the area of every face (M,)."""
    import trimesh

    mesh = trimesh.Trimesh(surface.vertices, surface.faces, process=False, validate=False)
    return trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces)), mesh.area_faces


def _area(surface: Surface) -> float:
    """Total area of a surface (normalised units squared)."""
    import trimesh

    return float(trimesh.triangles.area(surface.vertices[surface.faces]).sum())


def drop_unobserved_components(surface: Surface, observed: np.ndarray, agreeing: np.ndarray | None = None) -> Surface:
    """Drop connected components under ``MIN_OBSERVED_SHARE`` of whose area is observed (``observed``
    (N,) > 0 at a vertex: bool, or how many frames observed it), or whose observed area is under
    ``MIN_OBSERVED_AREA`` times that of the best-observed component (which is always kept, without
    labels); a surface no camera observed at all is left as it is (nothing to judge it by).

    With ``agreeing`` (N,), of those observations how many the training labels gave the object's
    class, the component kept whatever its share is the one with the most observed area the labels
    confirm (observed area x agreement), and components whose labels agree less than
    ``MIN_LABEL_SUPPORT`` times as often as on it are dropped (a patch of wall next to a bag that
    the bag's channel claimed: its pixels were labelled bag in 14-16% of the views that saw it, the
    bag's own in 63-73%; on one run the patch was larger and better observed than the bag).

    On the medium-noise room (4000 iterations) the chairs' own pieces had 23-46% of their area
    observed, the shells their channels grew under the floor or in a corner 0-12% (they touch
    observed surfaces): 0.1 drops most of those. 0.2 would drop the rest but lost the refrigerator
    and the bed, whose large, partly seen bodies scored below a shell their channels grew along a
    wall."""
    labels, face_area = _components(surface)
    area = np.bincount(labels, weights=face_area)
    seen = np.bincount(labels, weights=face_area * (observed[surface.faces] > 0).any(axis=1), minlength=len(area))
    if not seen.any():
        return surface
    share = seen / np.maximum(area, 1e-12)
    keep = (share >= MIN_OBSERVED_SHARE) & (seen >= MIN_OBSERVED_AREA * seen.max())
    anchor = seen.argmax()
    if agreeing is not None:
        vertex_component = np.zeros(len(surface.vertices), dtype=np.int64)
        vertex_component[surface.faces.reshape(-1)] = np.repeat(labels, 3)
        votes = np.bincount(vertex_component, weights=observed, minlength=len(area))
        support = np.bincount(vertex_component, weights=agreeing, minlength=len(area)) / np.maximum(votes, 1)
        if (seen * support).any():  # the anchor: the most observed area the labels confirm
            anchor = (seen * support).argmax()
        keep &= (votes == 0) | (support >= MIN_LABEL_SUPPORT * support[anchor])
    keep[anchor] = True  # always kept, whatever its share
    return _keep_faces(surface, keep[labels])


def clean_components(surface: Surface, min_component: float) -> tuple[Surface, float]:
    """Drop connected components whose area is under ``min_component`` times the largest one's (the
    largest is always kept). Returns the cleaned surface and its floater share: the area outside its
    largest component over its whole area."""
    labels, face_area = _components(surface)
    area = np.bincount(labels, weights=face_area)
    largest = float(area.max()) if len(area) else 0.0
    cleaned = _keep_faces(surface, area[labels] >= min_component * largest)
    total = float(area[area >= min_component * largest].sum())
    return cleaned, (1.0 - largest / total) if total > 0 else 0.0


@torch.no_grad()
def field_colors(model: Model, surface: Surface, chunk: int = 65536) -> np.ndarray:
    """uint8 (N, 3) colours of the colour network at the vertices, seen along their normals."""
    device = model.bbox.device
    colors = []
    for start in range(0, len(surface.vertices), chunk):
        points = torch.as_tensor(surface.vertices[start : start + chunk], dtype=torch.float32, device=device)
        normal = torch.nn.functional.normalize(torch.as_tensor(surface.normals[start : start + chunk], dtype=torch.float32, device=device), dim=-1)
        needs_gradient = model.field.config.color_uses_normal
        geometry = model.field.geometry(points, with_jacobian=needs_gradient)
        gradient = geometry.scene_gradient() if needs_gradient else None
        rgb = model.field.color(points, -normal, gradient, geometry.feature)
        colors.append(np.round(rgb.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8))
    return np.concatenate(colors) if colors else np.zeros((0, 3), np.uint8)


def _glb_scene(parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]):
    """A trimesh scene with one named node per part (name, world vertices, faces, uint8 colours)."""
    import trimesh

    scene = trimesh.Scene()
    for name, vertices, faces, colors in parts:
        mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False, validate=False)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene


def scene_grid(model: Model, resolution: int, chunk: int) -> tuple[Grid, np.ndarray, np.ndarray]:
    """The grid over the model's box at ``resolution`` and, at its vertices, the scene SDF (float32)
    and its arg-min channel (int16), both of the grid's shape (x-slabs keep memory bounded)."""
    grid = Grid.over(model.bbox.cpu().numpy().astype(np.float64), resolution)
    nx, ny, nz = grid.shape
    scene_sdf = np.empty(grid.shape, dtype=np.float32)
    owner = np.empty(grid.shape, dtype=np.int16)
    slab = max(1, chunk // (ny * nz))
    for i in range(0, nx, slab):
        hi = min(nx, i + slab)
        values, owners = _evaluate(model, grid.points((i, 0, 0), (hi, ny, nz)), chunk)
        scene_sdf[i:hi] = values.reshape(hi - i, ny, nz)
        owner[i:hi] = owners.reshape(hi - i, ny, nz)
    return grid, scene_sdf, owner


def _object_groups(
    model: Model, grid: Grid, scene_sdf: np.ndarray, owner: np.ndarray, classes: np.ndarray, chunk: int, requested: frozenset | set = frozenset()
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """(near-surface band, channels owning surface (C,) bool, groups of :func:`duplicate_groups`
    over the channels that own surface and have a class or are ``requested``)."""
    near_surface = np.abs(scene_sdf) < 2 * grid.step
    owns_surface = np.bincount(owner[near_surface].astype(np.int64), minlength=model.field.channels) > 0
    candidates = [c for c in range(1, model.field.channels) if owns_surface[c] and (classes[c] >= 0 or c in requested)]
    groups = duplicate_groups(model, grid, owner, near_surface, candidates, classes, chunk) if candidates else []
    return near_surface, owns_surface, groups


def object_ids(trained: TrainedRun, resolution: int = 128, chunk: int = 262_144) -> np.ndarray:
    """(C,) the object id of every channel: the channel itself, or for channels that hold one object
    between them (:func:`duplicate_groups`) the one that owns most surface. Used at render time so
    that a duplicate is not a second segment of its object."""
    model = trained.model
    model.eval()
    grid, scene_sdf, owner = scene_grid(model, resolution, chunk)
    _, _, groups = _object_groups(model, grid, scene_sdf, owner, trained.method.votes.classes().cpu().numpy(), chunk)
    ids = np.arange(model.field.channels)
    for group in groups:
        ids[group] = group[0]
    return ids


def extract_meshes(
    trained: TrainedRun,
    out_dir: Path,
    resolution: int = 256,
    objects: list[int] | None = None,
    chunk: int = 262_144,
    mask_spheres: bool = False,
    watertight: bool = False,
    min_component: float = 0.05,
) -> dict:
    """Extract and write the scene and object meshes (see the module docstring); returns the index
    written to index.json.

    objects: channel ids to extract (default: every object channel with a class); channels that own
        no surface, and meshes left with under ``MIN_OBJECT_SURFACE`` of the scene's area, are skipped.
        Channels that hold one object between them (:func:`duplicate_groups`) are meshed as one, under
        the id of the one owning most surface; index.json lists them as ``channels``.
    mask_spheres: only mesh cells inside the union of the run's sphere cloud (sphere-guided runs).
    watertight: close object surfaces where they meet their box.
    min_component: object components smaller than this share of the object's largest are dropped.
    """
    model, scene = trained.model, trained.scene
    model.eval()
    grid, scene_sdf, owner = scene_grid(model, resolution, chunk)
    mask = None
    if mask_spheres and model.spheres is not None:
        mask = _sphere_mask(model, grid)

    to_world = scene.normalization.invert
    classes = trained.method.votes.classes().cpu().numpy()
    names = scene.classes.names
    index: dict = {"resolution": resolution, "grid_shape": list(grid.shape), "watertight": watertight, "objects": []}
    glb_parts = []
    scene_area = 0.0
    surface = _marching_cubes(scene_sdf, grid, (0, 0, 0), mask)
    if surface is not None:
        cell = np.clip(np.round((surface.vertices - grid.origin) / grid.step).astype(int), 0, np.array(grid.shape) - 1)
        vertex_owner = owner[cell[:, 0], cell[:, 1], cell[:, 2]].astype(int)
        world = to_world(surface.vertices)
        colors = field_colors(model, surface)
        write_mesh(out_dir / "scene_instance.ply", world, surface.faces, instance_color(vertex_owner))
        write_mesh(out_dir / "scene_class.ply", world, surface.faces, class_color(np.where(vertex_owner > 0, classes[vertex_owner], -1)))
        write_mesh(out_dir / "scene_color.ply", world, surface.faces, colors)
        index["scene"] = {"vertices": int(len(world)), "faces": int(len(surface.faces))}
        scene_area = _area(surface)
        background = (vertex_owner[surface.faces] == 0).all(axis=1)
        if background.any():
            glb_parts.append(("background", world, surface.faces[background], colors))

    observed = _observation_test(trained)
    if objects is None:  # every channel with a class (its votes' share is no guide: small objects get few)
        objects = [c for c in range(1, model.field.channels) if classes[c] >= 0]
    smallest = MIN_OBJECT_SURFACE * scene_area
    pad = 3
    requested = {c for c in objects if 0 < c < model.field.channels}
    near_surface, owns_surface, groups = _object_groups(model, grid, scene_sdf, owner, classes, chunk, requested)
    for group in groups:
        if not set(group) & requested:
            continue
        channel = group[0]  # the object's id: its channel that owns the most surface
        cells = np.argwhere(np.isin(owner, group) & near_surface)
        lo = tuple(int(v) for v in np.maximum(cells.min(0) - pad, 0))
        hi = tuple(int(v) for v in np.minimum(cells.max(0) + pad + 1, grid.shape))
        values, _ = _evaluate(model, grid.points(lo, hi), chunk, group)
        volume = values.reshape(tuple(h - l for l, h in zip(lo, hi)))
        sub_mask = None if mask is None else mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        surface = _marching_cubes(volume, grid, lo, sub_mask, close=watertight)
        if surface is None:
            continue
        class_id = int(classes[channel])
        counts = None if observed is None else _observations(observed, to_world(surface.vertices), class_id)
        if not watertight:
            others, duplicates = _evaluate(model, surface.vertices, chunk, group, neighbours=owns_surface)[1].T
            inside = (others <= 0) | (duplicates <= -DUPLICATE_SLACK * grid.step)  # duplicates interleave with it
            if counts is not None:  # unseen copies of a neighbour's or a duplicate's surface
                inside |= (np.minimum(others, duplicates) < COPY_TOLERANCE * grid.step) & (counts[0] == 0)
            keep = ~inside[surface.faces].any(axis=1)
            if keep.any():  # else wholly inside others (barely trained): kept whole
                used = np.unique(surface.faces[keep])  # the vertices _keep_faces keeps
                counts = None if counts is None else tuple(None if c is None else c[used] for c in counts)
                surface = _keep_faces(surface, keep)
        if counts is not None:
            if not counts[0].any():  # wholly where no camera looked (behind a wall, under the floor): not an object
                continue
            surface = drop_unobserved_components(surface, *counts)
        surface, floaters = clean_components(surface, min_component)
        if _area(surface) < smallest:  # a fragment, as in panoptic fusion
            continue
        world = to_world(surface.vertices)
        name = names.get(class_id, f"class{class_id}") if class_id >= 0 else "unknown"
        stem = f"{channel:02d}_{name}"
        colors = field_colors(model, surface)
        write_mesh(out_dir / "objects" / f"{stem}.ply", world, surface.faces, instance_color(np.full(len(world), channel)))
        write_mesh(out_dir / "objects" / f"{stem}_class.ply", world, surface.faces, class_color(np.full(len(world), class_id)))
        write_mesh(out_dir / "objects" / f"{stem}_color.ply", world, surface.faces, colors)
        glb_parts.append((stem, world, surface.faces, colors))
        index["objects"].append(
            {
                "id": channel,
                "channels": group,
                "class": class_id,
                "class_name": name,
                "thing": bool(scene.classes.is_thing(class_id)),
                "file": f"objects/{stem}.ply",
                "vertices": int(len(world)),
                "faces": int(len(surface.faces)),
                "floater_share": round(floaters, 4),
                "bbox_min": np.round(world.min(0), 4).tolist(),
                "bbox_max": np.round(world.max(0), 4).tolist(),
            }
        )
    if glb_parts:
        glb = _glb_scene(glb_parts)
        atomic_write(out_dir / "scene.glb", lambda tmp: tmp.write_bytes(glb.export(file_type="glb")))
        index["glb"] = "scene.glb"
    write_json_atomic(out_dir / "index.json", index)
    return index


def _observation_test(trained: TrainedRun) -> VisibilityCuller | None:
    """The training frames' depth and thing labels (the run's label source) as a
    :class:`VisibilityCuller`; None when the scene has no depth."""
    source = trained.config.data.labels
    scene = load_run_scene(trained.config, trained.scene.root, {"depth", source})
    if scene.depths is None:
        return None
    train = scene.split("train")
    semantic, instance = (scene.gt_semantics, scene.gt_instance) if source == "gt" else (scene.m2f_semantics, scene.m2f_instance)
    labels = None if semantic is None else np.where(instance[train] > 0, semantic[train], -1)
    poses = scene.normalization.pose_to_world(scene.poses[train].astype(np.float64))
    return VisibilityCuller(poses, scene.intrinsics[train].astype(np.float64), scene.depths[train], labels=labels)


def _observations(test, world: np.ndarray, class_id: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(N,) observations of world points and how many of them the labels gave ``class_id``, from a
    :class:`VisibilityCuller`, or from any ``world -> bool`` observation test (agreement unknown)."""
    if isinstance(test, VisibilityCuller):
        return test.counts(world, class_id)
    return test(world).astype(np.int64), None


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
