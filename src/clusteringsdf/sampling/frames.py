"""Scene frames as device tensors, training targets, and ray batches gathered from pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.scene import Scene
from ..errors import DataError
from .rays import RayBatch, pixel_rays, ray_box_bounds


def per_frame_channels(instance: np.ndarray, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Map each frame's non-zero instance ids to random distinct object channels 1..channels-1.

    This is how ObjectSDF++ is trained on raw machine labels (and how ClusteringSDF sees them):
    ids mean nothing across views. When a frame has more segments than object channels, the
    smallest extra segments are marked -1 (ignored). 0 (stuff / none) stays 0.

    instance: (F, H, W) int. Returns (F, H, W) int64.
    """
    out = np.zeros(instance.shape, dtype=np.int64)
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
    lookup = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.int64)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup[instance]


@dataclass
class LabelMaps:
    """Per-pixel training labels of every frame, (F, H, W) arrays at the working resolution.

    semantic: class ids (0 = void); instance: segment ids as the labels give them (0 = none);
    confidence: float weights in [0, 1]; segment: what the method's segmentation losses use
    (an object channel, a class, or a per-frame segment label; -1 = ignored), see
    :meth:`clusteringsdf.methods.Method.segment_targets`.
    """

    semantic: np.ndarray
    instance: np.ndarray
    confidence: np.ndarray
    segment: np.ndarray


def training_labels(scene: Scene, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(semantic, instance, confidence) maps of a label source: "gt" (rs_*, confidence 1) or "m2f"
    (the machine labels and their confidence)."""
    if source == "gt":
        if scene.gt_semantics is None:
            raise DataError(scene.root / "rs_semantics", "missing folder (needed by --labels gt)")
        return scene.gt_semantics, scene.gt_instance, np.ones(scene.gt_semantics.shape, dtype=np.float32)
    if scene.m2f_semantics is None:
        raise DataError(scene.root / "m2f_semantics", "missing folder (needed by --labels m2f)")
    return scene.m2f_semantics, scene.m2f_instance, scene.confidence


class FrameStore:
    """All frames of a scene on a device, with per-pixel training targets.

    Args:
        scene: the loaded scene.
        device: torch device.
        labels: training labels, or None (cameras and images only, for rendering).

    Tensors (F frames, H x W): colors uint8 (F, H, W, 3); depth (F, H, W) normalised z-depth or
    None; normals (F, H, W, 3) or None; semantic, instance (raw ids), segment (the method's
    per-pixel target) int64 (F, H, W) or None; confidence (F, H, W).
    """

    def __init__(self, scene: Scene, device: torch.device, labels: LabelMaps | None) -> None:
        self.scene = scene
        self.device = device
        self.height, self.width = scene.hw
        self.bbox = torch.as_tensor(scene.bbox, device=device)
        self.poses = torch.as_tensor(scene.poses, device=device)
        self.intrinsics = torch.as_tensor(scene.intrinsics, device=device)
        self.train_frames = torch.as_tensor(scene.splits.get("train", np.arange(scene.num_frames)), device=device)
        self.colors = torch.as_tensor(scene.colors, device=device) if scene.colors is not None else None
        self.depth = None
        if scene.depths is not None:
            self.depth = torch.as_tensor(scene.depths * scene.normalization.scale, dtype=torch.float32, device=device)
        self.normals = torch.as_tensor(scene.normals, device=device) if scene.normals is not None else None
        self.semantic = self.instance = self.segment = self.confidence = None
        if labels is None:
            return
        self.semantic = torch.as_tensor(labels.semantic, dtype=torch.int64, device=device)
        self.instance = torch.as_tensor(labels.instance, dtype=torch.int64, device=device)
        self.segment = torch.as_tensor(labels.segment, dtype=torch.int64, device=device)
        self.confidence = torch.as_tensor(labels.confidence, dtype=torch.float32, device=device)

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
            batch.depth = self.depth[frame, v, u]
        if self.normals is not None:
            batch.normal = self.normals[frame, v, u]
        if self.semantic is not None:
            batch.semantic = self.semantic[frame, v, u]
            batch.instance = self.instance[frame, v, u]
            batch.segment = self.segment[frame, v, u]
            batch.confidence = self.confidence[frame, v, u]
        return batch
