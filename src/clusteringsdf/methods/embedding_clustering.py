"""Instance ids from rendered embeddings (Contrastive Lift's inference, reference §3.5).

Thing pixels of all views are clustered jointly: embeddings with every coordinate within 3 standard
deviations of the mean are kept to fit a per-dimension min-max normalisation; up to 50,000 of them
(seeded) are clustered by mean-shift (flat kernel, bandwidth 0.15 in the normalised cube, bin
seeding, min_bin_freq 10); then every thing pixel takes its nearest centroid.
"""

from __future__ import annotations

import numpy as np


def cluster_embeddings(
    embeddings: list[np.ndarray],
    thing_masks: list[np.ndarray],
    bandwidth: float = 0.15,
    max_points: int = 50_000,
    *,
    seed: int = 0,
) -> list[np.ndarray]:
    """Per-view (H, W) ids: 0 for non-thing pixels, cluster index + 1 for thing pixels.

    embeddings: per view (H, W, E); thing_masks: per view (H, W) bool.
    """
    from sklearn.cluster import MeanShift

    points = np.concatenate([e[m] for e, m in zip(embeddings, thing_masks)]) if embeddings else np.zeros((0, 1))
    out = [np.zeros(m.shape, dtype=np.int64) for m in thing_masks]
    if len(points) < 2:
        return out
    mean, std = points.mean(0), points.std(0) + 1e-8
    inliers = points[(np.abs(points - mean) <= 3 * std).all(axis=1)]
    if len(inliers) < 2:
        inliers = points
    low, high = inliers.min(0), inliers.max(0)
    scale = 1.0 / np.maximum(high - low, 1e-8)
    normalised = (inliers - low) * scale
    rng = np.random.default_rng(seed)
    if len(normalised) > max_points:
        normalised = normalised[rng.choice(len(normalised), max_points, replace=False)]
    shift = MeanShift(bandwidth=bandwidth, bin_seeding=True, min_bin_freq=10, cluster_all=False).fit(normalised)
    centres = shift.cluster_centers_
    if len(centres) == 0:
        centres = normalised.mean(0, keepdims=True)
    for view, (embedding, mask) in enumerate(zip(embeddings, thing_masks)):
        x = (embedding[mask] - low) * scale
        distances = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        out[view][mask] = distances.argmin(1) + 1
    return out
