"""The :class:`Scene`: everything one scene folder in the Panoptic Lifting layout holds, validated,
resized to the working resolution and normalised into the unit sphere.

Coordinates: poses are camera-to-world in the OpenCV convention (x right, y down, z forward). The
scene is normalised by a similarity ``x_norm = (x_world - center) * scale`` chosen so that the scene
content lies inside the unit sphere; ``Scene.poses`` are in normalised coordinates, depths stay in
metres (multiply by ``scale`` for normalised units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from ..errors import DataError
from . import layout
from .classes import AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT, AGNOSTIC_UNLABELLED, GROUND_TRUTH_CLASS_KEYS, ground_truth_class_data

# Components that can be loaded; "m2f" = machine labels + confidence, "gt" = rs_* ground truth.
ALL_COMPONENTS = frozenset({"color", "depth", "normal", "m2f", "gt"})


@dataclass(frozen=True)
class SegmentationClasses:
    """Class metadata from ``segmentation_data.pkl``.

    ``class_agnostic`` marks a scene whose masks carry no classes (instance ids only): class 2 =
    "object" (thing), 1 = "background" (stuff), 0 = unlabelled; training picks the instance mode.
    """

    num_classes: int
    thing_classes: tuple[int, ...]
    stuff_classes: tuple[int, ...]
    names: dict[int, str] = field(default_factory=dict)
    class_agnostic: bool = False

    def is_thing(self, class_id: int) -> bool:
        return class_id in self.thing_classes

    def stuff_mask(self, count: int) -> np.ndarray:
        """(count,) bool: the stuff classes among class ids 0..count-1 (:func:`class_mask`)."""
        return class_mask(self.stuff_classes, count)


def class_mask(classes: Iterable[int], count: int) -> np.ndarray:
    """(count,) bool, true at the given class ids; void (0) and ids of ``count`` or more are left out."""
    mask = np.zeros(count, dtype=bool)
    mask[[c for c in classes if 0 < c < count]] = True
    return mask


@dataclass(frozen=True)
class Normalization:
    """Similarity mapping world to normalised coordinates: ``x_norm = (x_world - center) * scale``."""

    center: np.ndarray  # (3,)
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) * self.scale

    def invert(self, points: np.ndarray) -> np.ndarray:
        return points / self.scale + self.center

    def pose_to_norm(self, pose: np.ndarray) -> np.ndarray:
        out = np.array(pose, dtype=np.float64)
        out[..., :3, 3] = self.apply(out[..., :3, 3])
        return out

    def pose_to_world(self, pose: np.ndarray) -> np.ndarray:
        out = np.array(pose, dtype=np.float64)
        out[..., :3, 3] = self.invert(out[..., :3, 3])
        return out


@dataclass
class Scene:
    """One scene at the working resolution. Per-frame arrays are indexed like ``frame_names``.

    Shapes (F frames, H x W working resolution): ``intrinsics`` (F, 3, 3) float32, ``poses`` (F, 4, 4)
    float32 normalised camera-to-world, ``colors`` (F, H, W, 3) uint8, ``depths`` (F, H, W) float32
    metres (0 = missing), ``normals`` (F, H, W, 3) float32 camera frame, label maps (F, H, W) int32,
    ``confidence`` (F, H, W) float32. Optional components are None when absent or not loaded.
    The GT label maps follow ``classes``: in a class-agnostic scene whose ``rs_semantics`` keep
    their own classes they are turned into its contract (:func:`_agnostic_ground_truth`).
    """

    root: Path
    frame_names: list[str]
    native_hw: tuple[int, int]
    hw: tuple[int, int]
    intrinsics: np.ndarray
    poses: np.ndarray
    normalization: Normalization
    bbox: np.ndarray  # (2, 3) normalised axis-aligned bounds of the scene content
    splits: dict[str, np.ndarray]
    classes: SegmentationClasses
    colors: np.ndarray | None = None
    depths: np.ndarray | None = None
    normals: np.ndarray | None = None
    m2f_semantics: np.ndarray | None = None
    m2f_instance: np.ndarray | None = None
    confidence: np.ndarray | None = None
    gt_semantics: np.ndarray | None = None
    gt_instance: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def split(self, name: str) -> np.ndarray:
        """Frame indices of a split ("train" or "test")."""
        if name not in self.splits:
            raise DataError(self.root / layout.SPLITS_FILE, f"has no '{name}' split")
        return self.splits[name]

    @property
    def gt_mesh_path(self) -> Path | None:
        path = self.root / layout.GT_MESH_FILE
        return path if path.is_file() else None

    @property
    def has_gt_labels(self) -> bool:
        """Whether the scene has ground-truth label maps (``rs_*``) to score predictions against."""
        return (self.root / layout.FOLDERS["rs_semantics"]).is_dir() and (self.root / layout.FOLDERS["rs_instance"]).is_dir()


# --------------------------------------------------------------------------------------- loading


def working_size(native_hw: tuple[int, int], downscale: float = 1.0, target_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Working (H, W) from a downscale factor or an explicit target size."""
    if target_hw is not None:
        return int(target_hw[0]), int(target_hw[1])
    if downscale <= 0:
        raise ValueError("downscale must be positive")
    return max(1, int(round(native_hw[0] / downscale))), max(1, int(round(native_hw[1] / downscale)))


def scale_intrinsics(k: np.ndarray, native_hw: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    """Rescale K for a resize, with integer pixel coordinates at pixel centres."""
    sy, sx = hw[0] / native_hw[0], hw[1] / native_hw[1]
    out = np.array(k, dtype=np.float64)
    out[0, 0] *= sx
    out[1, 1] *= sy
    out[0, 1] *= sx
    out[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return out


def _resize(array: np.ndarray, hw: tuple[int, int], resample: int) -> np.ndarray:
    if array.shape[:2] == tuple(hw):
        return array
    if array.ndim == 2:
        mode = "F" if array.dtype.kind == "f" else "I"
        cast = np.float32 if mode == "F" else np.int32
        resized = Image.fromarray(array.astype(cast), mode=mode).resize((hw[1], hw[0]), resample)
        return np.asarray(resized).astype(array.dtype)
    if array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array).resize((hw[1], hw[0]), resample))
    channels = [_resize(array[..., c], hw, resample) for c in range(array.shape[-1])]
    return np.stack(channels, axis=-1)


def _class_ids(data: dict, key: str, path: Path) -> tuple[int, ...]:
    value = data[key]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise DataError(path, f"'{key}' must be a list of integer class ids, got {type(value).__name__}")
    ids = []
    for item in value:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise DataError(path, f"'{key}' must be a list of integer class ids, holds {item!r}")
        ids.append(int(item))
    return tuple(sorted(set(ids)))


def _class_names(value, path: Path) -> dict[int, str]:
    """``class_names`` as a list indexed by class id or a dict {id: name} (ids may be numpy ints or digit strings)."""
    if value is None:
        return {}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return {i: str(name) for i, name in enumerate(value)}
    if isinstance(value, dict):
        names = {}
        for key, name in value.items():
            try:
                names[int(key)] = str(name)
            except (TypeError, ValueError):
                raise DataError(path, f"'class_names' keys must be class ids, got {key!r}") from None
        return names
    raise DataError(path, f"'class_names' must be a list indexed by class id or a dict {{id: name}}, got {type(value).__name__}")


def segmentation_classes(data: dict, path: Path) -> SegmentationClasses:
    """Class metadata from the content of a ``segmentation_data.pkl`` written by any tool.

    Reads ``fg_classes`` and ``bg_classes`` (lists, tuples, sets or arrays of Python or numpy
    integers), ``num_semantic_classes`` (default: largest id + 1), ``class_names`` (a list indexed by
    class id or a dict) and ``class_agnostic``; other keys are ignored. Errors name the key at fault.
    """
    things = _class_ids(data, "fg_classes", path)
    stuff = _class_ids(data, "bg_classes", path)
    top = max(things + stuff + (0,))
    count = data.get("num_semantic_classes", top + 1)
    if isinstance(count, np.ndarray) and count.size == 1:
        count = count.item()
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise DataError(path, f"'num_semantic_classes' must be an integer, got {count!r}")
    if int(count) <= top:
        raise DataError(path, f"'num_semantic_classes' is {int(count)} but class {top} is listed in fg_classes/bg_classes")
    if set(things) & set(stuff):
        raise DataError(path, f"classes {sorted(set(things) & set(stuff))} are both thing and stuff")
    if min(things + stuff + (0,)) < 0:
        raise DataError(path, "'fg_classes'/'bg_classes' hold a negative class id")
    names = _class_names(data.get("class_names"), path)
    return SegmentationClasses(int(count), things, stuff, names, bool(data.get("class_agnostic", False)))


def read_segmentation_classes(path: Path) -> SegmentationClasses:
    """:func:`segmentation_classes` of the ``segmentation_data.pkl`` at ``path``."""
    return segmentation_classes(layout.read_segmentation_data(Path(path)), Path(path))


def read_classes(root: Path) -> SegmentationClasses:
    return read_segmentation_classes(root / layout.SEGMENTATION_FILE)


def _check_shape(path: Path, array: np.ndarray, native_hw: tuple[int, int], what: str) -> None:
    if array.shape[:2] != tuple(native_hw):
        raise DataError(
            path, f"{what} is {array.shape[1]}x{array.shape[0]} but the colour images are {native_hw[1]}x{native_hw[0]}"
        )


def _normalization_from_points(
    points: np.ndarray, fit: float = 1.05, tail_percent: float = 0.1, margin: float = 0.02
) -> tuple[Normalization, np.ndarray]:
    """Centre and scale that put the content box of ``points`` (N, 3) inside the unit sphere, and the
    scene box: the content box plus ``margin`` of its extent on every side.

    The content box holds all points but ``tail_percent`` (%) on each side of each axis (outliers).
    The margin matters: a ray ends on the scene box at the latest, so a surface within a few
    centimetres of the box (a floor, a wall) can be left unmodelled at the price of a depth error
    as small as that gap. The presets use a 10% margin; 2% (and a 0.1% tail) is how runs made
    before were normalised, and stays the default of configs that do not say.
    """
    low = np.percentile(points, tail_percent, axis=0)
    high = np.percentile(points, 100.0 - tail_percent, axis=0)
    center = (low + high) / 2.0
    radius = float(np.linalg.norm(high - low) / 2.0) * fit
    normalization = Normalization(center=center, scale=1.0 / max(radius, 1e-6))
    pad = margin * (high - low)
    bbox = np.stack([normalization.apply(low - pad), normalization.apply(high + pad)])
    return normalization, bbox.astype(np.float32)


def _depth_points(depth: np.ndarray, pixels: tuple[np.ndarray, np.ndarray], k: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (N, 3) of the valid (> 0) depths ``depth`` (h, w) sampled at ``pixels`` = (v, u),
    each (h, w), of the camera with intrinsics ``k`` (3, 3) and camera-to-world ``pose`` (4, 4)."""
    v, u = pixels
    ok = depth > 0
    x = (u[ok] - k[0, 2]) / k[0, 0] * depth[ok]
    y = (v[ok] - k[1, 2]) / k[1, 1] * depth[ok]
    cam = np.stack([x, y, depth[ok]], axis=-1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


MIN_SPARSE_POINTS = 100  # fewer structure-from-motion points than this do not outline a scene
SPARSE_POINTS_TAIL_PERCENT = 1.0  # SfM points hold outliers (bad matches): trim at least 1% per side


def _frustum_points(k: np.ndarray, pose: np.ndarray, hw: tuple[int, int], max_depth: float) -> list[np.ndarray]:
    """World points of the four image corners (4, 3) at 0.01 and at ``max_depth`` metres of the
    camera with intrinsics ``k`` (3, 3) and camera-to-world ``pose`` (4, 4)."""
    height, width = hw
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    rays = np.stack([(corners[:, 0] - k[0, 2]) / k[0, 0], (corners[:, 1] - k[1, 2]) / k[1, 1], np.ones(4)], -1)
    return [(rays * depth) @ pose[:3, :3].T + pose[:3, 3] for depth in (0.01, max_depth)]


def camera_up(poses: np.ndarray) -> np.ndarray:
    """(3,) unit up direction of OpenCV cameras (F, 4, 4) camera-to-world (y points down in the
    image): minus the mean of their y axes, in the frame the poses are in."""
    up = -np.asarray(poses, dtype=np.float64)[:, :3, 1].mean(0)
    return up / max(float(np.linalg.norm(up)), 1e-12)


def compute_normalization(
    poses_world: np.ndarray,
    intrinsics: np.ndarray,
    hw: tuple[int, int],
    depths: np.ndarray | None,
    *,
    frames: np.ndarray,
    max_depth: float = 5.0,
    tail_percent: float = 0.1,
    margin: float = 0.02,
    points: np.ndarray | None = None,
) -> tuple[Normalization, np.ndarray]:
    """Normalisation of the scene into the unit sphere.

    With depth: the bounds of the back-projected depth points (subsampled) of ``frames`` and their
    camera centres. Without depth but with sparse world ``points`` (N, 3) (a prepared colour-only
    capture's structure-from-motion points, at least :data:`MIN_SPARSE_POINTS`): the bounds of the
    camera centres and of the points, the points trimmed by at least
    :data:`SPARSE_POINTS_TAIL_PERCENT` per side and axis (SfM outliers). Otherwise the camera frusta between 0.01 and ``max_depth`` metres (Panoptic Lifting's
    rule), a box that can be far larger than what the cameras look at.
    """
    height, width = hw
    clouds = [poses_world[frames, :3, 3]]
    if depths is not None and np.any(depths[frames] > 0):
        step = max(1, int(np.sqrt(height * width / 2000)))
        v, u = np.mgrid[0:height:step, 0:width:step]
        clouds += [_depth_points(depths[i, v, u], (v, u), intrinsics[i], poses_world[i]) for i in frames]
        return _normalization_from_points(np.concatenate(clouds), tail_percent=tail_percent, margin=margin)
    if points is not None and len(points) >= MIN_SPARSE_POINTS:
        tail = max(tail_percent, SPARSE_POINTS_TAIL_PERCENT)
        low, high = np.percentile(points, tail, axis=0), np.percentile(points, 100.0 - tail, axis=0)
        inliers = points[np.all((points >= low) & (points <= high), axis=1)]
        return _normalization_from_points(np.concatenate(clouds + [inliers]), tail_percent=0.0, margin=margin)
    for i in frames:
        clouds += _frustum_points(intrinsics[i], poses_world[i], hw, max_depth)
    return _normalization_from_points(np.concatenate(clouds), fit=1.0, tail_percent=tail_percent, margin=margin)


def _split_indices(root: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Frame indices (n,) of each split in ``splits.json``; DataError for a frame without colour image."""
    index = {name: i for i, name in enumerate(names)}
    splits: dict[str, np.ndarray] = {}
    for split_name, split_frames in layout.read_splits(root / layout.SPLITS_FILE).items():
        for frame in split_frames:
            if frame not in index:
                raise DataError(root / layout.SPLITS_FILE, f"split '{split_name}' names frame '{frame}' which has no colour image")
        splits[split_name] = np.array([index[f] for f in split_frames], dtype=np.int64)
    return splits


def _native_size(frame_paths: dict[str, Path]) -> tuple[int, int]:
    """(H, W) shared by all colour images; DataError naming the first image of another size."""
    names = list(frame_paths)
    native_hw = layout.image_size(frame_paths[names[0]])
    for name in names[1:]:
        hw_i = layout.image_size(frame_paths[name])
        if hw_i != native_hw:
            raise DataError(
                frame_paths[name], f"image is {hw_i[1]}x{hw_i[0]} but {frame_paths[names[0]].name} is {native_hw[1]}x{native_hw[0]}"
            )
    return native_hw


@dataclass(frozen=True)
class _FrameFiles:
    """The per-frame folders of a scene: one file per frame name, of the native (H, W), loaded at
    the working (H, W)."""

    root: Path
    names: list[str]
    native_hw: tuple[int, int]
    hw: tuple[int, int]

    def read(self, folder: str, reader: Callable[[Path], np.ndarray], what: str, dtype: type) -> np.ndarray:
        """(F, H, W, ...) array of ``dtype``: every frame's file in ``folder`` (.png or .npy) read by
        ``reader``, checked to be of the native size and nearest-resized to the working size."""
        arrays = []
        for name in self.names:
            path = layout.find_frame_file(self.root / folder, name, (".png", ".npy"))
            if path is None:
                raise DataError(self.root / folder / f"{name}.png", "file not found")
            array = reader(path)
            _check_shape(path, array, self.native_hw, what)
            arrays.append(_resize(array, self.hw, Image.NEAREST).astype(dtype))
        return np.stack(arrays)

    def labels(self, folder: str) -> np.ndarray:
        """(F, H, W) int32 label maps of ``folder``."""
        return self.read(folder, layout.read_label, "label map", np.int32)


def _load_components(files: _FrameFiles, frame_paths: dict[str, Path], components: frozenset[str] | set[str]) -> dict[str, np.ndarray | None]:
    """The optional per-frame arrays of :class:`Scene` by field name: those of ``components`` that
    the scene has, None for the others."""
    root, names, hw = files.root, files.names, files.hw
    loaded: dict[str, np.ndarray | None] = dict.fromkeys(
        ("colors", "depths", "normals", "m2f_semantics", "m2f_instance", "confidence", "gt_semantics", "gt_instance")
    )
    if "color" in components:
        loaded["colors"] = np.stack([_resize(layout.read_color(frame_paths[n]), hw, Image.BOX) for n in names])
    if "depth" in components and (root / "depth").is_dir():
        loaded["depths"] = files.read("depth", layout.read_depth, "depth map", np.float32)
    if "normal" in components and (root / "normal").is_dir():
        loaded["normals"] = files.read("normal", layout.read_normal, "normal map", np.float32)
    if "m2f" in components and (root / "m2f_semantics").is_dir():
        loaded["m2f_semantics"] = files.labels("m2f_semantics")
        loaded["m2f_instance"] = files.labels("m2f_instance")
        loaded["confidence"] = _load_confidence(root, names, hw)
    if "gt" in components and (root / "rs_semantics").is_dir():
        loaded["gt_semantics"] = files.labels("rs_semantics")
        loaded["gt_instance"] = files.labels("rs_instance")
    return loaded


def _agnostic_ground_truth(root: Path, classes: SegmentationClasses, loaded: dict[str, np.ndarray | None]) -> None:
    """In a class-agnostic scene whose ground truth keeps its own classes (the ``rs_*`` class keys
    of ``segmentation_data.pkl``), the loaded GT maps in the scene's contract: 2 on the GT thing
    instances, 1 on other labelled pixels, 0 on void; instance ids on things only."""
    if not classes.class_agnostic or loaded["gt_semantics"] is None:
        return
    path = root / layout.SEGMENTATION_FILE
    data = layout.read_segmentation_data(path)
    if GROUND_TRUTH_CLASS_KEYS[0] not in data:
        return
    semantics, instance = loaded["gt_semantics"], loaded["gt_instance"]
    thing = np.isin(semantics, segmentation_classes(ground_truth_class_data(data), path).thing_classes) & (instance > 0)
    labelled = np.where(semantics > 0, AGNOSTIC_BACKGROUND, AGNOSTIC_UNLABELLED)
    loaded["gt_semantics"] = np.where(thing, AGNOSTIC_OBJECT, labelled).astype(semantics.dtype)
    loaded["gt_instance"] = np.where(thing, instance, 0).astype(instance.dtype)


def _normalization_frames(splits: dict[str, np.ndarray], count: int) -> np.ndarray:
    """The frames the normalisation is drawn from: the training split, or all ``count`` frames
    when there is none or it is empty."""
    frames = splits.get("train", np.arange(count))
    return frames if len(frames) else np.arange(count)


def load_scene(
    root: str | Path,
    downscale: float = 1.0,
    target_hw: tuple[int, int] | None = None,
    components: frozenset[str] | set[str] = ALL_COMPONENTS,
    *,
    max_depth: float = 5.0,
    box_margin: float = 0.02,
    box_tail_percent: float = 0.1,
    frame: tuple[Normalization, np.ndarray] | None = None,
) -> Scene:
    """Read and validate a scene folder in the Panoptic Lifting layout.

    Args:
        root: the scene folder.
        downscale: working resolution = native / downscale (ignored when ``target_hw`` is given).
        target_hw: explicit working (H, W).
        components: which optional parts to load (subset of :data:`ALL_COMPONENTS`); parts that the
            scene does not have are skipped silently, except that "m2f" and "gt" are all-or-nothing.
        max_depth: frustum depth in metres for the normalisation of scenes without depth.
        box_margin, box_tail_percent: how the scene box is drawn around the content (see
            :func:`_normalization_from_points`; a run passes its ``data.box_*`` settings).
        frame: a normalisation and scene box (2, 3) to use instead of computing them (what a
            trained run recorded: its model lives in that frame).

    Raises:
        DataError: one line naming the file and the problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise layout.not_a_scene(root) or DataError(root, "scene folder not found")
    frame_paths = layout.list_frames(root)
    names = list(frame_paths)
    classes = read_classes(root)
    splits = _split_indices(root, names)
    native_hw = _native_size(frame_paths)
    hw = working_size(native_hw, downscale, target_hw)
    k_native = layout.read_intrinsics(root / layout.INTRINSICS_FILE)
    poses_world = np.stack([layout.read_pose(root / "pose" / f"{name}.txt") for name in names])
    intrinsics = np.repeat(scale_intrinsics(k_native, native_hw, hw)[None], len(names), axis=0)
    files = _FrameFiles(root, names, native_hw, hw)
    optional = _load_components(files, frame_paths, components)
    _agnostic_ground_truth(root, classes, optional)

    if frame is None:  # normalisation needs metric depth at full detail; reuse the loaded maps or read them for it
        norm_depths = optional["depths"]
        if norm_depths is None and (root / "depth").is_dir():
            norm_depths = files.read("depth", layout.read_depth, "depth map", np.float32)
        points_file = root / layout.POINTS_FILE
        points = layout.read_points(points_file) if norm_depths is None and points_file.is_file() else None
        frame = compute_normalization(
            poses_world, intrinsics, hw, norm_depths,
            frames=_normalization_frames(splits, len(names)), max_depth=max_depth, tail_percent=box_tail_percent, margin=box_margin,
            points=points,
        )
    normalization, bbox = frame
    return Scene(
        root=root,
        frame_names=names,
        native_hw=native_hw,
        hw=hw,
        intrinsics=intrinsics.astype(np.float32),
        poses=normalization.pose_to_norm(poses_world).astype(np.float32),
        normalization=normalization,
        bbox=bbox,
        splits=splits,
        classes=classes,
        **optional,
    )


def _load_confidence(root: Path, names: list[str], hw: tuple[int, int]) -> np.ndarray:
    """Per-pixel segmenter confidence (F, H, W) resized bilinearly; 1 where no file exists."""
    folder = root / "m2f_probabilities"
    out = np.ones((len(names), *hw), dtype=np.float32)
    if not folder.is_dir():
        return out
    for i, name in enumerate(names):
        path = folder / f"{name}.npz"
        if not path.is_file():
            raise DataError(path, "file not found")
        _, confidence = layout.read_probabilities(path)
        out[i] = np.clip(_resize(confidence, hw, Image.BILINEAR), 0.0, 1.0)
    return out
