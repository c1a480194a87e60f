"""Depth interpolated from structure-from-motion keypoints (colour-only captures)."""

from __future__ import annotations

import numpy as np

from clusteringsdf.prepare.sparse_depth import MIN_POINTS, interpolate_point_depth


def _plane_depth(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Depth of a tilted plane seen by a pinhole camera: its inverse is affine in the pixel."""
    return 1.0 / (0.3 + 0.001 * u + 0.002 * v)


def test_a_plane_is_interpolated_exactly_inside_the_points_and_missing_outside():
    rng = np.random.default_rng(0)
    u, v = rng.uniform(20, 140, 300), rng.uniform(20, 100, 300)  # keypoints away from the borders
    depth = interpolate_point_depth(np.stack([u, v, _plane_depth(u, v)], axis=-1), 120, 160)
    rows, cols = np.mgrid[0:120, 0:160]
    known = depth > 0
    assert 0.4 < known.mean() <= 0.5  # the hull of the keypoints covers at most 120 x 80 of 160 x 120
    np.testing.assert_allclose(depth[known], _plane_depth(cols, rows)[known], rtol=1e-5)
    assert not known[:10].any() and not known[:, :10].any()  # outside the keypoints' hull


def test_long_triangles_and_too_few_points_leave_depth_missing():
    # two clusters far apart: the triangles bridging them are too long to trust
    rng = np.random.default_rng(1)
    u = np.concatenate([rng.uniform(0, 30, 40), rng.uniform(130, 159, 40)])
    v = rng.uniform(0, 119, 80)
    depth = interpolate_point_depth(np.stack([u, v, np.full(80, 2.0)], axis=-1), 120, 160)
    assert (depth[:, 50:110] == 0).all() and (depth[:, 5:25] > 0).mean() > 0.5
    few = np.stack([u[: MIN_POINTS - 1], v[: MIN_POINTS - 1], np.ones(MIN_POINTS - 1)], axis=-1)
    assert not interpolate_point_depth(few, 120, 160).any()
    collinear = np.stack([np.arange(30.0), np.arange(30.0), np.ones(30)], axis=-1)
    assert not interpolate_point_depth(collinear, 120, 160).any()
