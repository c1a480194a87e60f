"""Pose accuracy against known poses: similarity alignment (Umeyama) and rotation / centre errors.

Used by the tests and the benchmarks of ``prepare`` to score estimated poses, whose world frame (and,
without depth, scale) is arbitrary, against the true ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PoseErrors", "pose_errors", "umeyama"]


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``target ~ s R source + t`` between point sets (N, 3), N >= 3.

    Returns (s, R (3, 3), t (3,)).
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    covariance = xt.T @ xs / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    variance = (xs**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ sign) / variance) if with_scale and variance > 0 else 1.0
    return scale, rotation, mu_t - scale * rotation @ mu_s


@dataclass(frozen=True)
class PoseErrors:
    """Errors of estimated poses after the best similarity alignment to the true ones.

    ``rotation_deg`` and ``centre`` (true units) are per frame; ``scale`` is the alignment's scale
    (true units per estimated unit: 1.0 for a metric estimate in metres).
    """

    rotation_deg: np.ndarray
    centre: np.ndarray
    scale: float

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_deg))

    @property
    def median_centre(self) -> float:
        return float(np.median(self.centre))


def pose_errors(estimated: np.ndarray, true: np.ndarray) -> PoseErrors:
    """Align estimated camera-to-world poses (N, 4, 4) to true ones by a similarity, then compare
    rotations (geodesic angle) and camera centres.

    The alignment's rotation is the chordal mean of ``R_true R_est^T`` over the frames (camera
    centres of a walk-through are nearly coplanar, so they alone leave the tilt poorly determined);
    its scale and translation are the least-squares fit of the centres under that rotation.
    """
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", true[:, :3, :3], estimated[:, :3, :3]))
    rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    source = estimated[:, :3, 3] @ rotation.T
    target = true[:, :3, 3]
    xs, xt = source - source.mean(0), target - target.mean(0)
    scale = float((xs * xt).sum() / max((xs**2).sum(), 1e-12))
    centres = scale * xs + target.mean(0)
    rotations = rotation @ estimated[:, :3, :3]
    relative = np.einsum("nji,njk->nik", rotations, true[:, :3, :3])
    cosine = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return PoseErrors(np.degrees(np.arccos(cosine)), np.linalg.norm(centres - target, axis=1), scale)
