"""The scene box of a scene without depth: around its structure-from-motion points when it has them,
else the cameras' frusta."""

from __future__ import annotations

import numpy as np

from clusteringsdf.data import layout
from clusteringsdf.data.scene import compute_normalization


def _cameras(count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Cameras on a circle of radius 2 around the origin, looking at it (OpenCV axes)."""
    poses = []
    for angle in np.linspace(0, 2 * np.pi, count, endpoint=False):
        centre = np.array([2 * np.cos(angle), 2 * np.sin(angle), 0.0])
        forward = -centre / np.linalg.norm(centre)
        down = np.array([0.0, 0.0, -1.0])
        right = np.cross(down, forward)
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, down, forward], axis=1)
        pose[:3, 3] = centre
        poses.append(pose)
    k = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    return np.stack(poses), np.repeat(k[None], count, axis=0)


def test_sparse_points_draw_a_tight_box_and_outliers_are_trimmed():
    poses, k = _cameras()
    rng = np.random.default_rng(0)
    object_points = rng.uniform(-0.3, 0.3, size=(2000, 3))
    outliers = rng.uniform(-50, 50, size=(10, 3))  # bad matches, 0.5%
    frames = np.arange(len(poses))
    norm, box = compute_normalization(poses, k, (48, 64), None, frames=frames, points=np.concatenate([object_points, outliers]))
    frusta_norm, _ = compute_normalization(poses, k, (48, 64), None, frames=frames)
    # the content is the cameras' ring (radius 2) and the object, not the 5-unit frusta or the outliers
    assert abs(1.0 / norm.scale - 1.05 * np.linalg.norm([4.0, 4.0, 0.6]) / 2) < 0.1  # 1.05: the fit into the unit sphere
    assert frusta_norm.scale < 0.5 * norm.scale
    world_box = box / norm.scale + norm.center
    assert np.all(world_box[0] > -2.5) and np.all(world_box[1] < 2.5)


def test_too_few_points_fall_back_to_the_frusta():
    poses, k = _cameras()
    frames = np.arange(len(poses))
    few = compute_normalization(poses, k, (48, 64), None, frames=frames, points=np.zeros((5, 3)))
    none = compute_normalization(poses, k, (48, 64), None, frames=frames)
    assert few[0].scale == none[0].scale


def test_points_file_round_trip(tmp_path):
    points = np.random.default_rng(1).normal(size=(300, 3))
    layout.write_points(tmp_path / layout.POINTS_FILE, points)
    assert np.allclose(layout.read_points(tmp_path / layout.POINTS_FILE), points)
