"""Normals of a depth map (RGB-D tracking's point-to-plane ICP uses them)."""

import numpy as np

from clusteringsdf.prepare.rgbd_odometry import _depth_normals

K = np.array([[100.0, 0.0, 39.5], [0.0, 100.0, 29.5], [0.0, 0.0, 1.0]])


def _plane_depth(normal: np.ndarray, offset: float, height: int = 60, width: int = 80) -> np.ndarray:
    """Depth (H, W) of the plane ``normal . x = offset`` seen by the camera ``K``."""
    v, u = np.mgrid[0:height, 0:width]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], axis=-1)
    return (offset / (rays @ normal)).astype(np.float32)


def test_a_tilted_plane_gets_its_normal_facing_the_camera():
    normal = np.array([0.3, -0.2, -1.0])
    normal /= np.linalg.norm(normal)
    depth = _plane_depth(normal, -2.0)
    _, normals, valid = _depth_normals(depth, K)
    assert valid[5:-5, 5:-5].all() and not valid[0].any() and not valid[:, -1].any()
    angles = np.degrees(np.arccos(np.clip(normals[valid] @ normal, -1.0, 1.0)))
    assert angles.max() < 1.0, angles.max()


def test_no_normal_across_a_depth_jump_or_at_missing_depth():
    depth = np.full((60, 80), 2.0, dtype=np.float32)
    depth[:, 40:] = 3.0  # a step: an occlusion edge between columns 39 and 40
    depth[10:15, 10:15] = 0.0
    _, normals, valid = _depth_normals(depth, K)
    assert not valid[:, 38:42].any() and not valid[10:15, 10:15].any()
    assert valid[30, 20] and np.allclose(normals[30, 20], [0.0, 0.0, -1.0], atol=1e-6)
