"""Scores of rendered views that need no labels: PSNR of the colours and the rendered depth, against
the scene's depth or, without it, between neighbouring views.

Read: ``PRED/rgb/<f>.png`` and ``PRED/depth/<f>.png`` (uint16 mm of the scene's unit, as ``render``
writes them) and the scene's ``color/``, ``depth/``, ``pose/`` and intrinsics.

* ``psnr``: mean over the frames of each frame's PSNR (the prediction bilinearly resized to the
  colour image's size when the sizes differ).
* ``depth_abs_rel``: when the scene has depth for every frame, mean |d - d*| / d* over all its valid
  pixels of all frames (the prediction nearest-resized to the depth's size).
* ``depth_consistency``: when the scene has no depth, how well the rendered depths of consecutive
  frames agree: every pixel of one frame's rendered depth is lifted to 3D with its camera and
  projected into the other frame (both ways); of those that land inside the other frame on a pixel
  with rendered depth, the share whose depth there is within :data:`CONSISTENCY_TOLERANCE` of the
  projected depth (``depth_consistency_pixels``: how many were compared). It measures whether the
  views agree on one geometry, not whether the geometry is right; occlusions between the two views
  count as disagreement, so it stays under 1 for any scene with depth discontinuities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data import layout
from ..data.scene import scale_intrinsics
from .image_metrics import DepthAccumulator, psnr

CONSISTENCY_TOLERANCE = 0.05  # relative depth difference up to which two views agree


def resize_color(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 (H, W, 3) to (H', W', 3)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), resample=Image.BILINEAR))


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of float32 (H, W) depth to (H', W')."""
    if depth.shape == tuple(size):
        return depth
    image = Image.fromarray(depth.astype(np.float32))
    return np.asarray(image.resize((size[1], size[0]), resample=Image.NEAREST)).astype(np.float32)


def view_psnr(scene_root: Path, pred_root: Path, frames: list[str]) -> float | None:
    """Mean PSNR of ``PRED/rgb`` against the scene's colour images; None unless every frame has both."""
    color_dir = scene_root / layout.FOLDERS["color"]
    pairs = [(pred_root / "rgb" / f"{name}.png", layout.find_frame_file(color_dir, name, layout.COLOR_SUFFIXES)) for name in frames]
    if not all(pred.is_file() and gt is not None for pred, gt in pairs):
        return None
    values = []
    for pred_path, gt_path in pairs:
        gt_rgb = layout.read_color(gt_path)
        pred_rgb = resize_color(layout.read_color(pred_path), gt_rgb.shape[:2])
        values.append(psnr(pred_rgb.astype(np.float64) / 255.0, gt_rgb.astype(np.float64) / 255.0))
    return float(np.mean(values))


def depth_abs_rel(scene_root: Path, pred_root: Path, frames: list[str]) -> float | None:
    """Scene-level AbsRel of ``PRED/depth`` against the scene's depth; None unless every frame has both."""
    depth_dir = scene_root / layout.FOLDERS["depth"]
    pairs = [(pred_root / "depth" / f"{name}.png", depth_dir / f"{name}.png") for name in frames]
    if not all(pred.is_file() and gt.is_file() for pred, gt in pairs):
        return None
    accumulator = DepthAccumulator()
    for pred_path, gt_path in pairs:
        gt_depth = layout.read_depth(gt_path)
        accumulator.update(resize_depth(layout.read_depth(pred_path), gt_depth.shape), gt_depth)
    return accumulator.value


def _camera(scene_root: Path, name: str, hw: tuple[int, int], k_native: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (3, 3) at ``hw`` and camera-to-world pose (4, 4) of frame ``name``."""
    color = layout.find_frame_file(scene_root / layout.FOLDERS["color"], name, layout.COLOR_SUFFIXES)
    native_hw = layout.image_size(color) if color is not None else hw
    return scale_intrinsics(k_native, native_hw, hw), layout.read_pose(scene_root / layout.FOLDERS["pose"] / f"{name}.txt")


def _agreement(depth_a: np.ndarray, camera_a: tuple[np.ndarray, np.ndarray], depth_b: np.ndarray, camera_b: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    """(pixels of ``depth_a`` that land on a pixel of ``depth_b`` with depth, of those within the
    tolerance) when lifted with camera a and projected with camera b; depths (H, W) in the scene's unit."""
    (k_a, pose_a), (k_b, pose_b) = camera_a, camera_b
    v, u = np.nonzero(depth_a > 0)
    z = depth_a[v, u].astype(np.float64)
    points = np.stack([(u - k_a[0, 2]) / k_a[0, 0] * z, (v - k_a[1, 2]) / k_a[1, 1] * z, z], axis=-1)
    world = points @ pose_a[:3, :3].T + pose_a[:3, 3]
    local = (world - pose_b[:3, 3]) @ pose_b[:3, :3]  # R_b^T (x - t_b)
    ahead = local[:, 2] > 1e-9
    local = local[ahead]
    u_b = np.round(k_b[0, 0] * local[:, 0] / local[:, 2] + k_b[0, 2]).astype(np.int64)
    v_b = np.round(k_b[1, 1] * local[:, 1] / local[:, 2] + k_b[1, 2]).astype(np.int64)
    inside = (u_b >= 0) & (u_b < depth_b.shape[1]) & (v_b >= 0) & (v_b < depth_b.shape[0])
    seen = depth_b[v_b[inside], u_b[inside]].astype(np.float64)
    projected = local[inside, 2]
    valid = seen > 0
    agree = np.abs(projected[valid] - seen[valid]) <= CONSISTENCY_TOLERANCE * seen[valid]
    return int(valid.sum()), int(agree.sum())


def depth_consistency(scene_root: Path, pred_root: Path, frames: list[str]) -> tuple[float | None, int]:
    """(share of agreeing pixels, pixels compared) of the rendered depths of consecutive frames,
    both ways (see the module docstring); (None, 0) when no two frames overlap, or a rendered depth
    or a camera is missing."""
    paths = [pred_root / "depth" / f"{name}.png" for name in frames]
    poses = [scene_root / layout.FOLDERS["pose"] / f"{name}.txt" for name in frames]
    cameras = [scene_root / layout.INTRINSICS_FILE, *poses]
    if len(frames) < 2 or not all(path.is_file() for path in [*paths, *cameras]):
        return None, 0
    k_native = layout.read_intrinsics(scene_root / layout.INTRINSICS_FILE)
    compared = agreed = 0
    previous = None
    for name, path in zip(frames, paths):
        depth = layout.read_depth(path)
        current = (depth, _camera(scene_root, name, depth.shape, k_native))
        if previous is not None:
            for (depth_a, camera_a), (depth_b, camera_b) in ((previous, current), (current, previous)):
                n, ok = _agreement(depth_a, camera_a, depth_b, camera_b)
                compared, agreed = compared + n, agreed + ok
        previous = current
    return (agreed / compared if compared else None), compared


def image_scores(scene_root: Path, pred_root: Path, frames: list[str]) -> dict[str, Any]:
    """``psnr``, and ``depth_abs_rel`` against the scene's depth or, where the scene has none,
    ``depth_consistency`` and ``depth_consistency_pixels``: each when its files exist for every frame."""
    scores: dict[str, Any] = {}
    value = view_psnr(scene_root, pred_root, frames)
    if value is not None:
        scores["psnr"] = value
    if (scene_root / layout.FOLDERS["depth"]).is_dir():
        value = depth_abs_rel(scene_root, pred_root, frames)
        if value is not None:
            scores["depth_abs_rel"] = value
        return scores
    share, pixels = depth_consistency(scene_root, pred_root, frames)
    if share is not None:
        scores["depth_consistency"], scores["depth_consistency_pixels"] = share, pixels
    return scores


def depth_note(scene_root: Path, scores: dict[str, Any]) -> str:
    """What the depth scores of :func:`image_scores` compared, in words."""
    if "depth_abs_rel" in scores:
        return "depth_abs_rel: rendered depth against the scene's depth"
    if "depth_consistency" in scores:
        return (f"depth_consistency: share of pixels whose rendered depth agrees within {100 * CONSISTENCY_TOLERANCE:g}% with a "
                "neighbouring held-out view's (the scene has no depth to compare with: it checks that the views agree, not that they are right)")
    if (scene_root / layout.FOLDERS["depth"]).is_dir():
        return "depth: not scored (the scene's depth or the rendered depth is missing for some frames)"
    return "depth: unavailable (the scene has no depth, and no two held-out views with rendered depth overlap)"
