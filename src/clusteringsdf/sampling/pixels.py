"""Pixel batches for the clustering losses (paper §3.7 and appendix A.1.2).

* Label-comprehensive sampling: every label of a frame is represented among its rays, with a quota
  proportional to its area and at least one ray.
* Key frames: the top ``keyframe_fraction`` of TRAIN frames by number of distinct labels; frames
  with no foreground label are replaced by a random key frame, and any frame is replaced by one
  with probability ``keyframe_probability``.
* Multi-frame batches: a batch holds several frames, so the cross-view loss can compare objects
  that never share a view.

Labels are per-frame integers (machine instance ids, or semantic classes), 0 = background,
-1 = ignored. Each frame's pixels are indexed once, sorted by label (CSR layout), so drawing
a batch is a handful of vectorised operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FrameLabelIndex:
    """Pixels of every frame grouped by label.

    order: (F, H*W) int32 pixel indices of each frame sorted by label (4 bytes per pixel).
    label_values: (F, K) labels present (padded with -2), starts/counts: (F, K) their slice of
    ``order`` (count 0 for padding). num_labels: (F,) number of labels >= 0 present.
    """

    order: torch.Tensor
    label_values: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    num_labels: torch.Tensor
    foreground_labels: torch.Tensor  # (F,) number of labels > 0


def index_labels(labels: torch.Tensor) -> FrameLabelIndex:
    """Build the per-frame label index of label maps (F, H, W) of any integer type (frame by
    frame, so no full-size temporary is made)."""
    frames = labels.shape[0]
    flat = labels.reshape(frames, -1)
    order = torch.empty(flat.shape, dtype=torch.int32, device=labels.device)
    values, starts, counts = [], [], []
    for f in range(frames):
        order[f] = torch.argsort(flat[f], stable=True).to(torch.int32)
        v, c = torch.unique(flat[f], return_counts=True)
        keep = v >= 0
        first = torch.cumsum(c, 0) - c
        values.append(v[keep].long())
        starts.append(first[keep])
        counts.append(c[keep])
    width = max(1, max(v.shape[0] for v in values))
    device = labels.device

    def pad(items: list[torch.Tensor], fill: int) -> torch.Tensor:
        out = torch.full((frames, width), fill, dtype=torch.int64, device=device)
        for f, item in enumerate(items):
            out[f, : item.shape[0]] = item
        return out

    label_values = pad(values, -2)
    return FrameLabelIndex(
        order=order,
        label_values=label_values,
        starts=pad(starts, 0),
        counts=pad(counts, 0),
        num_labels=torch.tensor([v.shape[0] for v in values], device=device),
        foreground_labels=torch.tensor([int((v > 0).sum()) for v in values], device=device),
    )


def keyframes(index: FrameLabelIndex, train_frames: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top ``fraction`` of the train frames by number of labels (at least one frame)."""
    counts = index.num_labels[train_frames]
    k = max(1, int(round(fraction * train_frames.shape[0])))
    top = torch.argsort(counts, descending=True, stable=True)[:k]
    return train_frames[top]


def choose_frames(
    index: FrameLabelIndex,
    train_frames: torch.Tensor,
    key: torch.Tensor,
    count: int,
    *,
    substitute_probability: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """``count`` random train frames; empty ones (no foreground label) and, with the given
    probability, any others are replaced by random key frames."""
    device = train_frames.device
    pick = train_frames[torch.randint(0, train_frames.shape[0], (count,), device=device, generator=generator)]
    replace = torch.rand(count, device=device, generator=generator) < substitute_probability
    replace |= index.foreground_labels[pick] == 0
    substitutes = key[torch.randint(0, key.shape[0], (count,), device=device, generator=generator)]
    return torch.where(replace, substitutes, pick)


def label_comprehensive_pixels(
    index: FrameLabelIndex, frames: torch.Tensor, budget: int, generator: torch.Generator, *, balance: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels covering every label of each frame, drawn uniformly within the label. Of a frame with
    K labels and P pixels, label u with n_u pixels gets ceil((1 - balance) * budget * n_u / P) rays
    (>= 1) plus floor(balance * budget / K): ``balance`` = 0 is the paper's area-proportional quota;
    a positive ``balance`` gives small segments (small or rarely seen objects) rays of their own.

    Returns (frame (R,), flat pixel index (R,)); R is at most budget + K per frame.
    """
    device = frames.device
    counts = index.counts[frames]  # (B, K)
    starts = index.starts[frames]
    pixels = index.order.shape[1]
    share = torch.ceil((1.0 - balance) * budget * counts.to(torch.float64) / pixels).long().clamp_min(1)
    share = share + int(balance * budget) // index.num_labels[frames].clamp_min(1).unsqueeze(-1)
    quota = torch.where(counts > 0, share, torch.zeros_like(counts))
    slot_frame = torch.arange(frames.shape[0], device=device).unsqueeze(-1).expand_as(quota)
    flat_quota = quota.reshape(-1)
    owner = torch.repeat_interleave(torch.arange(flat_quota.shape[0], device=device), flat_quota)  # (R,) slot of each ray
    offset = (torch.rand(owner.shape[0], device=device, generator=generator, dtype=torch.float64) * counts.reshape(-1)[owner]).long()
    position = starts.reshape(-1)[owner] + offset
    batch_frame = slot_frame.reshape(-1)[owner]
    pixel = index.order[frames[batch_frame], position].long()
    return frames[batch_frame], pixel


def random_pixels(frames: torch.Tensor, per_frame: int, pixels: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_frame`` uniformly random pixels of each frame: (frame (R,), flat pixel index (R,))."""
    frame = frames.repeat_interleave(per_frame)
    pixel = torch.randint(0, pixels, (frame.shape[0],), device=frames.device, generator=generator)
    return frame, pixel
