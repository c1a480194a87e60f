"""Which 3D points the cameras of a scene observed: on the measured surface of some frame."""

from __future__ import annotations

import numpy as np


class VisibilityCuller:
    """Keeps points observed by some frame (projects in front of the camera, within ``tolerance``
    of that frame's depth). Poses/intrinsics/depths of a scene in world metres; ``labels`` (F, H, W)
    optional per-pixel thing classes of the frames (-1: stuff or none), for :meth:`counts`."""

    def __init__(
        self, poses_world: np.ndarray, intrinsics: np.ndarray, depths: np.ndarray | None, tolerance: float = 0.05,
        *,
        labels: np.ndarray | None = None,
    ) -> None:
        self.poses = poses_world
        self.intrinsics = intrinsics
        self.depths = depths
        self.tolerance = tolerance
        self.labels = labels

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self.depths is None or len(points) == 0:
            return np.ones(len(points), dtype=bool)
        return self.counts(points)[0] > 0

    def counts(self, points: np.ndarray, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per point (N,): in how many frames it lies on the measured depth, and in how many of
        those the frame's ``labels`` say ``label`` there (zeros without labels or ``label``)."""
        observed = np.zeros(len(points), dtype=np.int64)
        agreeing = np.zeros(len(points), dtype=np.int64)
        if self.depths is None or len(points) == 0:
            return observed, agreeing
        height, width = self.depths.shape[1:]
        for f, (pose, k, depth) in enumerate(zip(self.poses, self.intrinsics, self.depths)):
            camera = (points - pose[:3, 3]) @ pose[:3, :3]
            z = camera[:, 2]
            front = z > 1e-3
            u = np.round(k[0, 0] * camera[:, 0] / np.where(front, z, 1) + k[0, 2]).astype(int)
            v = np.round(k[1, 1] * camera[:, 1] / np.where(front, z, 1) + k[1, 2]).astype(int)
            inside = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            measured = np.zeros(len(points))
            measured[inside] = depth[v[inside], u[inside]]
            seen = inside & (measured > 0) & (np.abs(measured - z) < self.tolerance)
            observed += seen
            if self.labels is not None and label is not None:
                said = np.zeros(len(points), dtype=bool)
                said[seen] = self.labels[f][v[seen], u[seen]] == label
                agreeing += said
        return observed, agreeing
