"""Which channels hold which objects, found on a grid over the scene box; shared by meshing and
rendering.

* The scene grid: the scene SDF (minimum over channels) and its arg-min channel at every vertex,
  evaluated in slabs so memory stays bounded at any resolution.
* The surface band: vertices within two grid steps of the scene's zero level; a channel *owns
  surface* where it is the arg-min there.
* Duplicates (:func:`duplicate_groups`): channels of one class that hold one object between them.
  A trained run can hold an object twice, each copy the scene minimum on interleaved patches of one
  surface; such channels are one object, named after the one that owns most surface.
* Patches (:func:`patch_targets`): a connected piece of the surface a channel owns that lies on a
  larger channel's object of its class. A channel can own patches of another object besides what it
  holds elsewhere (so it is no duplicate as a whole): each such patch is labelled that object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from ..model import Model, map_chunks

SURFACE_BAND = 2.0  # grid steps from the zero level that count as the surface
DUPLICATE_SURFACE = 0.8  # a channel joins another of its class whose surface passes through this share of what it owns
DUPLICATE_NEAR = 0.5  # and this share of what it owns lies within DUPLICATE_CELLS grid cells of what the other owns
DUPLICATE_CELLS = 4.0
DUPLICATE_MAX_CELLS = 400_000  # owned surface cells tested per run (evenly thinned beyond)
PATCH_MIN_CELLS = 8  # owned surface pieces with fewer cells keep their channel's object
PATCH_REACH = 2  # a patch also labels its channel's pixels whose surface lies this many grid cells around it


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
class SceneChannels:
    """The scene grid and what its channels hold.

    grid: the grid; scene_sdf (nx, ny, nz) float32 scene SDF and owner (nx, ny, nz) int16 arg-min
    channel at its vertices; near_surface (nx, ny, nz) bool, the surface band; owns_surface (C,)
    bool, channels that are the arg-min somewhere in the band; groups: the objects, lists of
    channels (:func:`duplicate_groups`), largest owner first.
    """

    grid: Grid
    scene_sdf: np.ndarray
    owner: np.ndarray
    near_surface: np.ndarray
    owns_surface: np.ndarray
    groups: list[list[int]]


LIPSCHITZ = 1.5  # bound assumed on the SDF's gradient norm when a grid cell is skipped (an eikonal-trained field has ~1)
COARSEST_STRIDE = 8  # the scene grid is first evaluated at every 8th vertex, then refined near the surface
SLAB_VERTICES = 1 << 21  # grid vertices whose indices and points are held at once while the scene grid is evaluated


def _lattice(n: int, stride: int) -> np.ndarray:
    """Vertex indices of a lattice of ``stride`` along an axis of ``n`` vertices: multiples of it and the last."""
    return np.unique(np.r_[np.arange(0, n, stride), n - 1])


def _cells_of(fine: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis, for lattice vertices ``fine`` (a superset of ``coarse``): the coarse cell each
    lies in (the upper one on a shared vertex), the other cell sharing it (the same where none), and
    its interpolation weight toward the cell's upper vertex."""
    cell = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, len(coarse) - 2)
    shared = np.clip(np.where(np.isin(fine, coarse), cell - 1, cell), 0, None)
    weight = (fine - coarse[cell]) / (coarse[cell + 1] - coarse[cell])
    return cell, shared, weight


def _interpolate(values: np.ndarray, cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Trilinear interpolation of coarse lattice values (a, b, c) at the fine lattice, one axis at a time."""
    for axis, (cell, _, weight) in enumerate(cells):
        shape = [1, 1, 1]
        shape[axis] = -1
        w = weight.reshape(shape).astype(np.float32)
        values = np.take(values, cell, axis=axis) * (1 - w) + np.take(values, cell + 1, axis=axis) * w
    return values


@torch.no_grad()
def scene_grid(model: Model, resolution: int, chunk: int) -> tuple[Grid, np.ndarray, np.ndarray]:
    """The grid over the model's box at ``resolution`` and, at its vertices, the scene SDF (float32)
    and its arg-min channel (int16), both of the grid's shape.

    Coarse to fine: every ``COARSEST_STRIDE``-th vertex is evaluated, then each halving of the stride
    evaluates only the new vertices of cells that may hold a value within ``SURFACE_BAND`` steps of
    the zero level (some corner within ``LIPSCHITZ`` x half the cell's diagonal plus the band); the
    rest are interpolated, which keeps their sign and leaves them outside the band. Every vertex of
    the band, and both ends of every edge the zero level crosses, is evaluated on the field; on a
    room at 256, 43% of the vertices are. Vertices are evaluated in x-slabs of about
    ``SLAB_VERTICES`` grid vertices, so memory beyond the two output grids stays bounded.
    """
    grid = Grid.over(model.bbox.cpu().numpy().astype(np.float64), resolution)
    band = SURFACE_BAND * grid.step

    def evaluate(wanted: np.ndarray, axes: list[np.ndarray], values: np.ndarray, owner: np.ndarray) -> None:
        """Fill ``values`` and ``owner`` on the lattice ``axes`` where ``wanted``, from the field."""
        slab = max(1, SLAB_VERTICES // (wanted.shape[1] * wanted.shape[2]))
        for start in range(0, wanted.shape[0], slab):
            index = np.argwhere(wanted[start : start + slab])
            index[:, 0] += start
            if not len(index):
                continue
            cells = np.stack([axes[a][index[:, a]] for a in range(3)], -1)
            sdf, arg_min = map_chunks(lambda p: model.field.geometry(p).sdf.min(dim=-1), grid.points_at(cells), chunk=chunk, device=model.bbox.device)
            values[tuple(index.T)], owner[tuple(index.T)] = sdf.cpu().numpy(), arg_min.to(torch.int16).cpu().numpy()

    stride = COARSEST_STRIDE
    axes = [_lattice(n, stride) for n in grid.shape]
    shape = tuple(len(a) for a in axes)
    values, owner, exact = np.empty(shape, np.float32), np.empty(shape, np.int16), np.ones(shape, dtype=bool)
    evaluate(exact, axes, values, owner)
    while stride > 1:
        stride //= 2
        finer = [_lattice(n, stride) for n in grid.shape]
        cells = [_cells_of(f, a) for f, a in zip(finer, axes)]
        # a coarse cell may hold the band when its corners differ in sign or the one nearest the zero
        # level is within reach
        corner_min, low, high = np.abs(values), values, values
        for axis in range(3):
            last = values.shape[axis] - 1

            def pair(array: np.ndarray, combine) -> np.ndarray:
                return combine(np.take(array, np.arange(last), axis=axis), np.take(array, np.arange(1, last + 1), axis=axis))

            corner_min, low, high = pair(corner_min, np.minimum), pair(low, np.minimum), pair(high, np.maximum)
        half_diagonal = 0.5 * grid.step * float(np.sqrt(sum(float(np.diff(a).max()) ** 2 for a in axes)))
        active = (corner_min <= LIPSCHITZ * half_diagonal + band) | ((low < 0) & (high > 0))
        needed = np.zeros(tuple(len(f) for f in finer), dtype=bool)
        for pick in np.ndindex(2, 2, 2):  # a fine vertex on a shared face lies in up to 8 coarse cells
            needed |= active[np.ix_(*(c[k] for c, k in zip(cells, pick)))]
        nearest = np.ix_(*(c[0] + (c[2] > 0.5) for c in cells))
        values, owner = _interpolate(values, cells), owner[nearest]
        on_coarse = np.ix_(*(np.isin(f, a) for f, a in zip(finer, axes)))
        was_exact = np.zeros_like(needed)
        was_exact[on_coarse] = exact
        evaluate(needed & ~was_exact, finer, values, owner)
        exact = was_exact | needed
        axes = finer
    return grid, values, owner


def analyse_channels(model: Model, resolution: int, classes: np.ndarray, chunk: int, *, requested: frozenset | set = frozenset()) -> SceneChannels:
    """The scene grid at ``resolution`` and the objects among the channels that own surface and have
    a class (``classes`` (C,), -1: none) or are ``requested``."""
    grid, scene_sdf, owner = scene_grid(model, resolution, chunk)
    near_surface = np.abs(scene_sdf) < SURFACE_BAND * grid.step
    owns_surface = np.bincount(owner[near_surface].astype(np.int64), minlength=model.field.channels) > 0
    candidates = [c for c in range(1, model.field.channels) if owns_surface[c] and (classes[c] >= 0 or c in requested)]
    groups = duplicate_groups(model, grid, owner, near_surface, channels=candidates, classes=classes, chunk=chunk) if candidates else []
    return SceneChannels(grid, scene_sdf, owner, near_surface, owns_surface, groups)


def _host(cells: np.ndarray, hosts: list[tuple[int, float]], trees: dict[int, cKDTree]) -> int | None:
    """The channel that surface ``cells`` (n, 3) belong to, of ``hosts`` (channel, share of the cells
    its zero level passes through): one whose zero level passes through ``DUPLICATE_SURFACE`` of them
    and near whose owned cells (``trees``) most of them lie, at least ``DUPLICATE_NEAR`` within
    ``DUPLICATE_CELLS``; None when no host qualifies."""
    best, best_near = None, DUPLICATE_NEAR
    for k, share in hosts:
        if share < DUPLICATE_SURFACE:
            continue
        distance, _ = trees[k].query(cells, distance_upper_bound=DUPLICATE_CELLS)
        near = float(np.isfinite(distance).mean())
        if near >= best_near:
            best, best_near = k, near
    return best


@torch.no_grad()
def duplicate_groups(
    model: Model, grid: Grid, owner: np.ndarray, near_surface: np.ndarray, *, channels: list[int], classes: np.ndarray, chunk: int,
) -> list[list[int]]:
    """``channels`` grouped into objects.

    Rule: channel c joins channel k of its class that owns more of the scene's surface when, over
    the surface cells c owns, k's zero level passes within two grid steps of ``DUPLICATE_SURFACE``
    (80%) or more of them, and ``DUPLICATE_NEAR`` (50%) or more lie within ``DUPLICATE_CELLS`` (4)
    cells of a cell k owns; of several such k, the one most of c's cells lie near. Coincident
    surfaces alone do not join two channels: a channel can hold hidden copies of its neighbours;
    where each owns surface tells two objects apart. Groups are ordered by owned surface, largest
    first, within and across.
    """
    cells = np.argwhere(near_surface & np.isin(owner, channels))
    if len(cells) > DUPLICATE_MAX_CELLS:
        cells = cells[:: int(np.ceil(len(cells) / DUPLICATE_MAX_CELLS))]
    owned_by = owner[cells[:, 0], cells[:, 1], cells[:, 2]]
    on_surface = map_chunks(
        lambda p: model.field.geometry(p).sdf[:, channels].abs() < SURFACE_BAND * grid.step, grid.points_at(cells), chunk=chunk, device=model.bbox.device
    ).cpu().numpy()
    count = {c: int((owned_by == c).sum()) for c in channels}
    trees = {c: cKDTree(cells[owned_by == c]) for c in channels if count[c]}
    parent = {c: c for c in channels}
    for c in channels:
        mine = owned_by == c
        if not mine.any():
            continue
        hosts = [(k, on_surface[mine, j].mean()) for j, k in enumerate(channels) if k != c and classes[k] == classes[c] and (count[k], -k) > (count[c], -c)]
        best = _host(cells[mine], hosts, trees)
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


@dataclass
class ObjectMap:
    """The object that owns each channel's surface, for labelling rendered pixels and points.

    ids: (C,) each channel's object (:func:`duplicate_groups`: a duplicate takes its group's id).
    grid, patches: the scene grid and :func:`patch_targets`' (2, nx, ny, nz) channel of each
    reassigned patch and the channel whose object it is, at the patch's vertices (-1 elsewhere);
    None for a map of channel ids alone.
    """

    ids: np.ndarray
    grid: Grid | None = None
    patches: np.ndarray | None = None

    def at(self, channel: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Objects (N,) of surface points (N, 3), normalised, owned by ``channel`` (N,): the channel's
        object, or a patch's where the point's nearest grid vertex belongs to a patch of that channel."""
        objects = self.ids[channel]
        if self.patches is None or not len(channel):
            return objects
        shape = np.array(self.grid.shape)
        cells = np.rint((points - self.grid.origin) / self.grid.step).astype(np.int64)
        inside = ((cells >= 0) & (cells < shape)).all(axis=1)
        cells = np.clip(cells, 0, shape - 1)
        patch_channel, target = self.patches[:, cells[:, 0], cells[:, 1], cells[:, 2]]
        mine = inside & (patch_channel == channel)
        return np.where(mine, self.ids[np.maximum(target, 0)], objects)


@torch.no_grad()
def patch_targets(model: Model, channels: SceneChannels, classes: np.ndarray, ids: np.ndarray, *, chunk: int) -> np.ndarray | None:
    """(2, nx, ny, nz) int16: at the vertices of each reassigned patch and ``PATCH_REACH`` cells
    around it, the patch's channel and the channel whose object it is; -1 elsewhere; None when no
    patch is reassigned.

    A patch is a connected piece (26-neighbours, at least ``PATCH_MIN_CELLS`` vertices) of the surface
    band a channel c owns, c not itself a duplicate. It goes to channel k of c's class that owns more
    surface than c when the rule of :func:`duplicate_groups` holds for the patch alone: k's zero
    level passes through ``DUPLICATE_SURFACE`` of its vertices and ``DUPLICATE_NEAR`` of them lie
    within ``DUPLICATE_CELLS`` of a vertex k owns (of several such k, the one most lie near).
    """
    grid, owner, band = channels.grid, channels.owner, channels.near_surface
    members = [c for group in channels.groups for c in group]
    band_cells = np.argwhere(band)
    band_owner = owner[tuple(band_cells.T)]
    owned = {c: band_cells[band_owner == c] for c in members}
    trees = {c: cKDTree(cells) for c, cells in owned.items() if len(cells)}
    patches = np.full((2, *grid.shape), -1, dtype=np.int16)
    for c in members:
        larger = [k for k in members if k != c and classes[k] == classes[c] and (len(owned[k]), -k) > (len(owned[c]), -c)]
        if ids[c] != c or not larger or len(owned[c]) < PATCH_MIN_CELLS:
            continue
        cells = owned[c]
        lo = np.maximum(cells.min(0) - PATCH_REACH, 0)
        hi = np.minimum(cells.max(0) + 1 + PATCH_REACH, grid.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        labels, _ = ndimage.label(band[box] & (owner[box] == c), structure=np.ones((3, 3, 3)))
        piece = labels[tuple((cells - lo).T)]
        sizes = np.bincount(piece)
        on_surface = map_chunks(
            lambda p: model.field.geometry(p).sdf[:, larger].abs() < SURFACE_BAND * grid.step, grid.points_at(cells), chunk=chunk, device=model.bbox.device
        ).cpu().numpy()
        for i in np.flatnonzero(sizes >= PATCH_MIN_CELLS):
            mine = piece == i
            best = _host(cells[mine], [(k, on_surface[mine, j].mean()) for j, k in enumerate(larger)], trees)
            if best is not None:
                reach = ndimage.binary_dilation(labels == i, iterations=PATCH_REACH)
                patches[(slice(None), *box)][:, reach] = np.array([[c], [best]], dtype=np.int16)
    return patches if (patches >= 0).any() else None


def object_map(model: Model, classes: np.ndarray, resolution: int = 128, chunk: int = 262_144, *,
               analysis: SceneChannels | None = None) -> ObjectMap:
    """The run's :class:`ObjectMap`: every channel labelled as itself, duplicates
    (:func:`duplicate_groups`) as the one that owns most surface, patches (:func:`patch_targets`) as
    their object. Used at render time so that neither a duplicate nor a patch is a second segment of
    its object. ``analysis``: the channels already analysed at ``resolution``."""
    model.eval()
    analysis = analysis or analyse_channels(model, resolution, classes, chunk)
    ids = np.arange(model.field.channels)
    for group in analysis.groups:
        ids[group] = group[0]
    patches = patch_targets(model, analysis, classes, ids, chunk=chunk)
    return ObjectMap(ids, analysis.grid, patches)
