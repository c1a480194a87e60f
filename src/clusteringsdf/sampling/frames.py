"""Scene frames as device tensors, training targets, and ray batches gathered from pixels."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from ..data.scene import Scene
from ..errors import DataError
from .joins import join_masks
from .rays import RayBatch, pixel_rays, ray_box_bounds


def per_frame_channels(instance: np.ndarray, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Map each frame's non-zero instance ids to random distinct object channels 1..channels-1.

    This is how ObjectSDF++ is trained on raw machine labels (and how ClusteringSDF sees them):
    ids mean nothing across views. When a frame has more segments than object channels, the
    smallest extra segments are marked -1 (ignored). 0 (stuff / none) stays 0.

    instance: (F, H, W) int. Returns (F, H, W) int16 (int32 beyond 32767 channels).
    """
    out = np.zeros(instance.shape, dtype=np.int16 if channels < 2**15 else np.int32)
    for f in range(instance.shape[0]):
        ids, counts = np.unique(instance[f], return_counts=True)
        keep = ids != 0
        ids, counts = ids[keep], counts[keep]
        order = np.argsort(-counts, kind="stable")
        ids = ids[order]
        slots = rng.permutation(np.arange(1, channels))
        lookup = {int(i): int(slots[k]) if k < len(slots) else -1 for k, i in enumerate(ids)}
        if lookup:
            keys = np.array(list(lookup), dtype=np.int64)
            values = np.array(list(lookup.values()), dtype=np.int64)
            sorter = np.argsort(keys)
            frame = instance[f]
            nonzero = frame != 0
            position = np.searchsorted(keys[sorter], frame[nonzero])
            out[f][nonzero] = values[sorter][position]
    return out


def scene_channels(instance: np.ndarray, channels: int, path) -> np.ndarray:
    """Map view-consistent instance ids to channels 1..K with one scene-wide table (0 stays 0)."""
    ids = np.unique(instance)
    ids = ids[ids != 0]
    if len(ids) > channels - 1:
        raise DataError(path, f"scene has {len(ids)} instances but the field has only {channels - 1} object channels (raise field.channels)")
    lookup = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.int16 if channels < 2**15 else np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup[instance]


MAX_AUTO_CHANNELS = 128


@dataclass(frozen=True)
class SegmentStatistics:
    """How many segments the instance labels hold: ``max_per_frame`` in the busiest frame and
    ``distinct`` ids over all frames (for view-inconsistent machine labels an overestimate of the
    objects: every view numbers its segments anew)."""

    max_per_frame: int
    distinct: int


def segment_statistics(instance: np.ndarray) -> SegmentStatistics:
    """Statistics of non-zero instance ids in (F, H, W) maps."""
    per_frame = [np.unique(frame[frame > 0]) for frame in instance]
    distinct = np.unique(np.concatenate(per_frame)) if per_frame else np.zeros(0)
    return SegmentStatistics(max((len(ids) for ids in per_frame), default=0), int(len(distinct)))


def auto_channel_count(stats: SegmentStatistics, view_consistent: bool, cap: int = MAX_AUTO_CHANNELS, *, places: int | None = None) -> int:
    """SDF channels for ``--channels auto``: background + one channel per object.

    View-consistent ids (GT labels) count the objects exactly: ``distinct + 1``. Machine ids do
    not. With depth, the 3D places of the segments (``places``, :func:`.places.count_places`) count
    the objects, not the parts a segmenter cut them into; a frame's segments must still get
    distinct channels: ``1 + max(places, max_per_frame)``. Without depth a scan shows more objects
    than one frame, so ``1 + min(distinct, 2 * max_per_frame)``. Rounded up to a multiple of 8, at
    least 8, at most ``cap`` (past it objects share channels, which training reports).
    """
    if view_consistent:
        objects = stats.distinct
    elif places is not None:
        objects = max(places, stats.max_per_frame)
    else:
        objects = min(stats.distinct, 2 * stats.max_per_frame)
    return int(min(cap, max(8, -(-(objects + 1) // 8) * 8)))


PixelTargets = dict[str, np.ndarray]
"""A training method's per-pixel targets of every frame, by name, each (F, H, W) at the working
resolution. Integer maps are labels (-1: ignored) and reach the rays as int64; floating maps are
weights and reach them as float32. Every method provides ``semantic``, ``instance`` and
``confidence`` (the label source's maps, :class:`LabelMaps`) and ``segment`` (what its
segmentation terms use); a method adds any other map its terms need (the instance mode's
``place``), see :meth:`clusteringsdf.methods.Method.pixel_targets`."""


def ignored_segment_frames(targets: PixelTargets) -> int:
    """Frames where a labelled segment got no channel (more segments than object channels): -1
    segment targets on pixels with an instance and a class."""
    lost = (targets["segment"] == -1) & (targets["instance"] > 0) & (targets["semantic"] > 0)
    return int(lost.reshape(len(lost), -1).any(axis=1).sum())


@dataclass
class LabelMaps:
    """The training labels of every frame, (F, H, W) arrays at the working resolution: semantic
    class ids (0 = void), instance segment ids as the labels give them (0 = none), confidence
    float weights in [0, 1]."""

    semantic: np.ndarray
    instance: np.ndarray
    confidence: np.ndarray


def training_labels(scene: Scene, source: str, join: str = "off", *, notes: bool = False) -> LabelMaps:
    """The label maps of a label source: "gt" (rs_*, confidence 1) or "m2f" (the machine labels
    and their confidence). ``join`` (``clustering.join_masks``): "on" joins each frame's machine
    masks along depth-continuous borders (:mod:`.joins`), "auto" does so for masks without classes.
    ``notes``: say on stderr what was joined, or why nothing could be."""
    if source == "gt":
        if scene.gt_semantics is None:
            raise DataError(scene.root / "rs_semantics", "missing folder (needed by --labels gt)")
        return LabelMaps(scene.gt_semantics, scene.gt_instance, np.ones(scene.gt_semantics.shape, dtype=np.float32))
    if scene.m2f_semantics is None:
        raise DataError(scene.root / "m2f_semantics", "missing folder (needed by --labels m2f)")
    instance = scene.m2f_instance
    if join == "on" or (join == "auto" and scene.classes.class_agnostic):
        if scene.depths is None:
            if notes:
                print("note: the scene has no depth, so masks that cut an object into parts are not joined "
                      "(clustering.join_masks): over-segmented masks split objects", file=sys.stderr)
        else:
            masks = sum(len(np.unique(frame[frame > 0])) for frame in instance) if notes else 0
            instance, merged = join_masks(instance, scene.depths)
            if notes:
                print(f"masks: {merged} of {masks} joined another mask of their frame along a depth-continuous border "
                      "(clustering.join_masks)", file=sys.stderr)
    return LabelMaps(scene.m2f_semantics, instance, scene.confidence)


class FrameStore:
    """All frames of a scene on a device, with the training method's per-pixel targets.

    Args:
        scene: the loaded scene.
        device: torch device.
        targets: the method's per-pixel targets (:data:`PixelTargets`).

    Tensors (F frames, H x W), kept in the compact types they are read in (on the CPU they share
    the scene's arrays, no copy); :meth:`rays` gathers a batch and widens it: colors uint8
    (F, H, W, 3); depth (F, H, W) float32 metres or None; normals (F, H, W, 3) float32 or None;
    ``targets`` name -> (F, H, W) (floating maps as float32). Memory: 3 (colour) + 4 (depth) + the
    targets (semantic 4, instance 4, segment 2, confidence 4, place 2: 16-18 bytes) per pixel, plus
    12 with normals; the clustering methods' label index adds 4 (see :mod:`.pixels`).
    """

    def __init__(self, scene: Scene, device: torch.device, targets: PixelTargets) -> None:
        self.scene = scene
        self.device = device
        self.height, self.width = scene.hw
        self.bbox = torch.as_tensor(scene.bbox, device=device)
        self.poses = torch.as_tensor(scene.poses, device=device)
        self.intrinsics = torch.as_tensor(scene.intrinsics, device=device)
        self.train_frames = torch.as_tensor(train_frames(scene), device=device)
        self.colors = _tensor(scene.colors, device)
        self.depth = _tensor(scene.depths, device)  # metres; normalised units at gather time
        self.depth_scale = scene.normalization.scale
        self.normals = _tensor(scene.normals, device)
        self.targets = {
            name: _tensor(values, device, np.float32 if np.issubdtype(values.dtype, np.floating) else None) for name, values in targets.items()
        }

    def rays(self, frame: torch.Tensor, v: torch.Tensor, u: torch.Tensor, near: float) -> RayBatch:
        """Rays and targets at integer pixels (v, u) of frames, all (R,) int64."""
        origins, directions, dz = pixel_rays(self.poses[frame], self.intrinsics[frame], v, u)
        t_near, t_far = ray_box_bounds(origins, directions, self.bbox, near)
        batch = RayBatch(
            origins=origins,
            directions=directions,
            cam_to_world=self.poses[frame, :3, :3],
            dz=dz,
            near=t_near,
            far=t_far,
            frame=frame,
            pixel=torch.stack([v, u], dim=-1),
        )
        if self.colors is not None:
            batch.rgb = self.colors[frame, v, u].float() / 255.0
        if self.depth is not None:
            batch.depth = self.depth[frame, v, u] * self.depth_scale
        if self.normals is not None:
            batch.normal = self.normals[frame, v, u]
        for name, values in self.targets.items():
            picked = values[frame, v, u]
            batch.targets[name] = picked if picked.is_floating_point() else picked.long()
        return batch


def train_frames(scene: Scene) -> np.ndarray:
    """The frames training draws rays from: the train split, or every frame without splits."""
    return scene.splits.get("train", np.arange(scene.num_frames))


def _tensor(array: np.ndarray | None, device: torch.device, dtype=None) -> torch.Tensor | None:
    """A tensor of the array on ``device`` (sharing its memory on the CPU when no cast is needed)."""
    if array is None:
        return None
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
