"""Cameras and poses shared by the pose sources: the result type, pixel conventions, undistortion.

Pixel conventions: the scene layout (and OpenCV, ScanNet) puts integer pixel coordinates at pixel
centres; COLMAP, instant-ngp and nerfstudio put the top-left image corner at 0 and pixel centres at
+0.5. :func:`colmap_to_layout_k` converts a K between them. Poses are camera-to-world 4x4 in the
OpenCV convention (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = ["PINHOLE_MODELS", "PoseResult", "colmap_to_layout_k", "remap"]

# COLMAP camera models without distortion
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


@dataclass
class PoseResult:
    """Poses of the frames that got one, and the one pinhole camera of the scene.

    Attributes:
        poses: frame name -> camera-to-world (4, 4) float64, OpenCV axes.
        k: pinhole K (3, 3) in layout pixel convention, valid for the (undistorted) images.
        source: what produced the poses ("sfm", "rgbd", "sfm+rgbd": SfM refined by RGB-D tracking, "colmap",
            "transforms", "scannet").
        metric: whether the unit is the metre.
        unregistered: frame name -> why it has no pose.
        undistort_map: (H, W, 2) float32 position (x, y) in the original image, layout convention,
            of every pixel of the undistorted image; None when the images have no distortion.
        notes: log lines about how the poses were obtained.
        observations: frame name -> (N, 3) keypoints (u, v) of the original image, layout
            convention, with the depth z of their triangulated point (COLMAP models only).
    """

    poses: dict[str, np.ndarray]
    k: np.ndarray
    source: str
    metric: bool
    unregistered: dict[str, str] = field(default_factory=dict)
    undistort_map: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    observations: dict[str, np.ndarray] | None = None


def colmap_to_layout_k(k: np.ndarray) -> np.ndarray:
    """K with pixel centres at +0.5 (COLMAP, instant-ngp) -> K with pixel centres at integers."""
    out = np.array(k, dtype=np.float64)
    out[0, 2] -= 0.5
    out[1, 2] -= 0.5
    return out


def remap(image: np.ndarray, grid: np.ndarray | None, order: int) -> np.ndarray:
    """Sample ``image`` (H, W) or (H, W, C) at ``grid`` (H', W', 2) positions (x, y), layout convention.

    ``order`` 1 = bilinear (colour), 0 = nearest (depth, labels); outside the image gives 0. Returns
    the input unchanged when ``grid`` is None.
    """
    if grid is None:
        return image
    coords = [grid[..., 1], grid[..., 0]]
    if image.ndim == 2:
        out = ndimage.map_coordinates(image, coords, order=order, mode="constant", cval=0)
        return out.astype(image.dtype)
    channels = [ndimage.map_coordinates(image[..., c], coords, order=order, mode="constant", cval=0) for c in range(image.shape[-1])]
    stacked = np.stack(channels, axis=-1)
    if image.dtype == np.uint8:
        stacked = np.clip(np.rint(stacked), 0, 255)
    return stacked.astype(image.dtype)
