"""Class-agnostic machine labels made of colour-and-depth superpixels ("fragments").

A frame's written colour and depth (what a segmenter would read) are cut into SLIC superpixels
(:func:`skimage.segmentation.slic`) over CIELAB colour and ``depth_weight`` times the log of the depth,
with ``compactness`` and a target count drawn per frame from ``segments`` (about 30 to 60 fragments
at any image size). Every fragment is one mask; one that lies mostly (over ``background_share`` of its
pixels) on a wall, the floor or the ceiling is background (as the ``classical`` segmenter's plane
removal would make it), every other one an object. Fragments follow colour and depth edges, not
objects, so an object is several fragments and a fragment may straddle two objects; a new frame
cuts the scene anew, so fragments do not repeat across views.

Ids come from running counters shared by all frames (never reused): ``m2f_instance`` one per object
fragment, ``m2f_segments`` one per fragment; semantics follow the class-agnostic contract (2 =
object, 1 = background, no unlabelled pixels); confidence is 1 (superpixels have no score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT
from .machine_labels import FrameLabels, IdCounters


@dataclass(frozen=True)
class FragmentParams:
    """Superpixel settings: the range of SLIC's target count (drawn per frame), its compactness
    (features rescaled to [0, 1]), the weight of log-depth against CIELAB colour and the share of
    background pixels that makes a fragment background."""

    segments: tuple[int, int] = (40, 52)
    compactness: float = 0.2
    depth_weight: float = 60.0
    background_share: float = 0.5


FRAGMENTS = FragmentParams()


def superpixels(color: np.ndarray, depth: np.ndarray, params: FragmentParams, rng: np.random.Generator) -> np.ndarray:
    """SLIC superpixels (H, W) numbered 1..S of colour (H, W, 3) uint8 and z-depth (H, W) metres."""
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    target = int(rng.integers(params.segments[0], params.segments[1] + 1))
    features = np.concatenate([rgb2lab(color), params.depth_weight * np.log(np.maximum(depth, 0.05))[..., None]], axis=-1)
    labels = slic(features, n_segments=target, compactness=params.compactness, channel_axis=-1, convert2lab=False,
                  start_label=1, enforce_connectivity=True)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape) + 1


def fragment_frame(color: np.ndarray, depth: np.ndarray, background: np.ndarray, *, params: FragmentParams = FRAGMENTS,
                   rng: np.random.Generator, counters: IdCounters) -> FrameLabels:
    """Fragment labels of one frame.

    Args:
        color: uint8 (H, W, 3).
        depth: z-depth (H, W) in metres.
        background: (H, W) bool, pixels on a wall, the floor or the ceiling.
        params: superpixel settings.
        rng: this frame's generator (draws the target count).
        counters: global id counters, advanced in place.
    """
    fragments = superpixels(color, depth, params, rng)
    count = int(fragments.max()) + 1
    area = np.bincount(fragments.ravel(), minlength=count)
    on_background = np.bincount(fragments.ravel(), weights=background.ravel().astype(np.float64), minlength=count)
    is_background = on_background > params.background_share * np.maximum(area, 1)
    segment = np.zeros(count, dtype=np.int64)
    segment[1:] = np.arange(counters.next_segment, counters.next_segment + count - 1)
    counters.next_segment += count - 1
    objects = np.flatnonzero(~is_background[1:]) + 1
    instance = np.zeros(count, dtype=np.int64)
    instance[objects] = np.arange(counters.next_instance, counters.next_instance + len(objects))
    counters.next_instance += len(objects)
    semantics = np.where(instance > 0, AGNOSTIC_OBJECT, AGNOSTIC_BACKGROUND)
    return FrameLabels(
        semantics=semantics[fragments], instance=instance[fragments], segments=segment[fragments],
        confidence=np.ones(fragments.shape, dtype=np.float32), probability=None, instance_to_semantic={},
        stats={"fragments": count - 1, "object_fragments": len(objects)},
    )
