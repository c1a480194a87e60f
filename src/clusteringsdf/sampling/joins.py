"""Joins: one frame's masks that are parts of one surface, merged before training.

Over-segmenting masks (superpixels, the ``classical`` segmenter, SAM's part masks) cut an object into
several masks of one frame. The clustering terms push every two masks of a frame to different
channels, so the parts of an object end in different channels. Two masks that are parts of one
object meet along a border on which the depth is continuous (one surface goes on across it); two
objects meet where one occludes the other, a depth jump. This module joins the masks of a frame
whose shared border is depth-continuous almost everywhere, transitively, into one mask. Objects that
rest on each other touch only along a contact line and keep their occluding borders, so they stay
apart.

Only instance ids (> 0) are joined; 0 (stuff / none) is left alone. The joined mask keeps the
smallest id of its parts, so ids stay unique across frames. Frames without depth are left as they
are.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

DEPTH_STEP = 0.03  # neighbouring pixels whose depths differ by less than this share are on one surface
CONTINUOUS_SHARE = 0.8  # this share of a shared border must be continuous for two masks to join
MIN_BORDER = 8  # pixel pairs: shorter borders (a corner touch) join nothing


def border_pairs(instance: np.ndarray, depth: np.ndarray, *, step: float = DEPTH_STEP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The borders between one frame's masks: (pairs (P, 2) int64 of ids a < b, border length (P,),
    continuous length (P,)), counted over 4-neighbour pixel pairs with two different ids > 0.

    instance (H, W) int ids; depth (H, W) metres (0 = missing: a border pixel pair without depth
    counts as border, not as continuous).
    """
    firsts, seconds, smooth = [], [], []
    for a, b, da, db in (
        (instance[:, :-1], instance[:, 1:], depth[:, :-1], depth[:, 1:]),
        (instance[:-1], instance[1:], depth[:-1], depth[1:]),
    ):
        border = (a != b) & (a > 0) & (b > 0)
        low, high = np.minimum(da[border], db[border]), np.maximum(da[border], db[border])
        firsts.append(np.minimum(a[border], b[border]))
        seconds.append(np.maximum(a[border], b[border]))
        smooth.append((low > 0) & (high - low <= step * low))
    first, second, continuous = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(smooth)
    if first.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs, inverse = np.unique(np.stack([first, second], axis=1).astype(np.int64), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    length = np.bincount(inverse, minlength=len(pairs))
    smooth_length = np.bincount(inverse, weights=continuous, minlength=len(pairs)).astype(np.int64)
    return pairs, length, smooth_length


def join_frame(instance: np.ndarray, depth: np.ndarray, *, step: float = DEPTH_STEP, share: float = CONTINUOUS_SHARE,
               min_border: int = MIN_BORDER) -> tuple[np.ndarray, int]:
    """One frame's instance ids (H, W) with the masks of one surface joined (module docstring), and
    the number of masks that joined another."""
    pairs, length, smooth = border_pairs(instance, depth, step=step)
    joined = pairs[(length >= min_border) & (smooth >= share * length)]
    if len(joined) == 0:
        return instance, 0
    ids = np.unique(instance[instance > 0])
    a, b = np.searchsorted(ids, joined[:, 0]), np.searchsorted(ids, joined[:, 1])
    graph = coo_matrix((np.ones(len(joined)), (a, b)), shape=(len(ids), len(ids)))
    count, component = connected_components(graph, directed=False)
    smallest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, component, ids.astype(np.int64))
    lookup = smallest[component]
    out = instance.copy()
    inside = instance > 0
    out[inside] = lookup[np.searchsorted(ids, instance[inside])].astype(instance.dtype)
    return out, len(ids) - count


def join_masks(instance: np.ndarray, depths: np.ndarray | None, **kwargs) -> tuple[np.ndarray, int]:
    """Every frame's masks joined (:func:`join_frame`): instance (F, H, W) ids, depths (F, H, W)
    metres or None (then nothing is joined). Returns the joined ids and how many masks joined
    another over all frames."""
    if depths is None:
        return instance, 0
    out = np.empty_like(instance)
    merged = 0
    for f in range(instance.shape[0]):
        out[f], count = join_frame(instance[f], depths[f], **kwargs)
        merged += count
    return out, merged
