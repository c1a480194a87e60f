"""Panoptic label maps from rendered semantics and object channels.

Each object channel is a 3D entity, so it gets ONE class for the whole scene: the class its training
labels voted for (accumulated during training, see ``methods.ChannelVotes``), or, for a channel without
votes, the majority of the per-pixel semantic arg-max over all its pixels in all rendered views.

A pixel is a thing pixel when its object channel's class is a thing AND the semantic prediction
there is a thing: it gets the channel's class and the channel as instance id. Every other pixel
(background channel 0, a channel of a stuff class, or a thing channel where the semantic head sees
stuff) gets its best stuff class and instance 0. Instance ids are thereby consistent across views
and never shared by two classes.

Fragments: a thing channel that covers less than ``min_segment_fraction`` of all rendered pixels is
not an object but a sliver (a channel that lost a few pixels to its neighbours); its pixels go to
their second-best channel when that is a kept thing channel, else to their stuff class. This is the
minimum segment size of every panoptic fusion (and of Contrastive Lift's clustering).
"""

from __future__ import annotations

import numpy as np


def channel_classes(semantics: list[np.ndarray], channels: list[np.ndarray], num_channels: int, num_classes: int) -> np.ndarray:
    """Majority semantic class of every channel over all views: (num_channels,) int, -1 if unseen."""
    votes = np.zeros((num_channels, num_classes), dtype=np.int64)
    for sem, ch in zip(semantics, channels):
        np.add.at(votes, (ch.reshape(-1), np.clip(sem.reshape(-1), 0, num_classes - 1)), 1)
    classes = votes.argmax(axis=1)
    classes[votes.sum(axis=1) == 0] = -1
    return classes


def fuse_panoptic(
    semantics: list[np.ndarray],
    channels: list[np.ndarray],
    thing_classes: tuple[int, ...],
    stuff_semantics: list[np.ndarray] | None = None,
    *,
    voted_classes: np.ndarray | None = None,
    second_channels: list[np.ndarray] | None = None,
    min_segment_fraction: float = 0.0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-view (semantic, instance) maps.

    Args:
        semantics: per view (H, W) arg-max class of the semantic prediction.
        channels: per view (H, W) arg-max object channel (0 = background).
        thing_classes: thing class ids.
        stuff_semantics: per view (H, W) arg-max over stuff classes only, used for non-thing
            pixels (defaults to ``semantics``).
        voted_classes: (C,) class of each channel from the training-label votes, -1 = no votes.
        second_channels: per view (H, W) second-best object channel, where fragment pixels go.
        min_segment_fraction: thing channels with fewer pixels than this share of all rendered
            pixels are fragments (0 keeps every channel).
    """
    num_channels = int(max(int(c.max(initial=0)) for c in channels)) + 1
    if second_channels is not None:
        num_channels = max(num_channels, int(max(int(c.max(initial=0)) for c in second_channels)) + 1)
    if voted_classes is not None:
        num_channels = max(num_channels, len(voted_classes))
    num_classes = int(max(int(s.max(initial=0)) for s in semantics)) + 1
    classes = channel_classes(semantics, channels, num_channels, num_classes)
    if voted_classes is not None:
        voted = np.full(num_channels, -1, dtype=np.int64)
        voted[: len(voted_classes)] = voted_classes
        classes = np.where(voted >= 0, voted, classes)
    num_classes = max(num_classes, int(classes.max(initial=0)) + 1)
    is_thing = np.zeros(max(num_classes, max(thing_classes, default=0) + 1), dtype=bool)
    is_thing[list(thing_classes)] = True
    thing_channel = (classes >= 0) & is_thing[np.clip(classes, 0, len(is_thing) - 1)]
    thing_channel[0] = False

    def thing_pixels(sem: np.ndarray, ch: np.ndarray) -> np.ndarray:
        return thing_channel[ch] & is_thing[np.clip(sem, 0, len(is_thing) - 1)]

    area = np.zeros(num_channels, dtype=np.int64)
    for sem, ch in zip(semantics, channels):
        area += np.bincount(ch[thing_pixels(sem, ch)], minlength=num_channels)
    total = sum(ch.size for ch in channels)
    kept = thing_channel & (area >= min_segment_fraction * total)

    out_semantic, out_instance = [], []
    for i, (sem, ch) in enumerate(zip(semantics, channels)):
        background = stuff_semantics[i] if stuff_semantics is not None else sem
        owner = ch
        if second_channels is not None:
            owner = np.where(kept[ch], ch, second_channels[i])
        thing = thing_pixels(sem, owner) & kept[owner]
        out_semantic.append(np.where(thing, classes[owner], background).astype(np.int64))
        out_instance.append(np.where(thing, owner, 0).astype(np.int64))
    return out_semantic, out_instance
