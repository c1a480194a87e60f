"""What a training method is: the base class every method derives from, its loss terms and the
channel -> class votes it keeps.

A method turns a scene's 2D labels into a 3D segmentation. It decides:

* how many SDF channels it needs (:meth:`Method.channel_count`);
* its per-pixel training targets (:meth:`Method.pixel_targets`: the labels, the segment targets
  of :meth:`Method.segment_targets`, and whatever else its terms read at a ray) and whether its
  batches are label-comprehensive (:attr:`Method.label_comprehensive`);
* what the model renders for it, in training and at inference (:meth:`Method.training_request`,
  :meth:`Method.render_request`);
* its weighted loss terms (:meth:`Method.loss_terms`: the shared reconstruction and geometry terms
  plus its own :meth:`Method.segmentation_terms`);
* how rendered views become panoptic label maps (:meth:`Method.class_scores`,
  :meth:`Method.fuse_labels`).

Method state (the channel -> class votes, an EMA head) is module state of the method, saved in
checkpoints next to the model; the training hooks that update it after each step are in
:mod:`clusteringsdf.training.hooks`.
"""

from __future__ import annotations

import sys
from typing import ClassVar, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.scene import Scene
from ..model import Model, RenderOutput, RenderRequest
from ..sampling.frames import LabelMaps, PixelTargets, ignored_segment_frames, per_frame_channels
from ..sampling.rays import RayBatch
from . import common
from .fusion import fuse_panoptic
from .terms import Term, Terms, weighted_total  # noqa: F401 - re-exported


OWNED_SHARE = 0.002  # a channel with this share of the training votes owns pixels (an object)


def channel_sharing_note(usage: dict | None) -> str | None:
    """One line for the log and the report when every object channel is owned, else None."""
    if usage is None or not usage["all_owned"]:
        return None
    return (
        f"every one of the {usage['object_channels']} object channels owns pixels: objects may have had to share a channel; "
        "train with more channels (--channels auto or a larger number)"
    )


class ChannelVotes(nn.Module):
    """Votes of the training labels for the class of each channel: buffer ``votes`` (C, K).

    Each training ray votes for its label's class in its arg-max channel, weighted by the label's
    confidence; older votes decay.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("votes", torch.zeros(channels, num_classes))

    @torch.no_grad()
    def vote(self, opacity: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, decay: float) -> None:
        """opacity (R, C); labels (R,) semantic classes (<= 0 ignored); weight (R,) e.g. confidence."""
        self.votes.mul_(decay)
        keep = (labels > 0) & (labels < self.votes.shape[1])
        channel = opacity.detach().argmax(-1)
        self.votes.index_put_((channel[keep], labels[keep]), weight[keep].to(self.votes.dtype), accumulate=True)

    def classes(self) -> torch.Tensor:
        """(C,) class voted for each channel, -1 where it got no votes."""
        classes = self.votes.argmax(-1)
        return torch.where(self.votes.sum(-1) > 0, classes, torch.full_like(classes, -1))

    def observed_classes(self) -> torch.Tensor:
        """(K,) classes that occur in the training labels seen so far (all True before any vote):
        a class the segmenter never produced cannot be predicted."""
        seen = self.votes.sum(0) > 0
        return seen if bool(seen.any()) else torch.ones_like(seen)

    def shares(self) -> torch.Tensor:
        """(C,) each channel's share of all votes (zeros before any vote): which channels own pixels."""
        per_channel = self.votes.sum(-1)
        total = per_channel.sum()
        return per_channel / total if bool(total > 0) else torch.zeros_like(per_channel)

    def owned(self, minimum_share: float = OWNED_SHARE) -> list[int]:
        """Object channels (>= 1) that own at least ``minimum_share`` of the votes (own pixels)."""
        shares = self.shares().cpu().numpy()
        return [int(c) for c in np.nonzero(shares >= minimum_share)[0] if c > 0]

    def usage(self) -> dict | None:
        """How many object channels own pixels; ``all_owned`` means objects may have had to share
        channels (more objects than channels). None before any vote."""
        if not bool(self.votes.sum() > 0):
            return None
        owned = len(self.owned())
        channels = self.votes.shape[0] - 1
        return {"object_channels": channels, "owned": owned, "all_owned": owned >= channels}


class LabelView(Protocol):
    """Per-view render-time maps a method fuses into labels, each (H, W): ``semantic`` arg-max
    class, ``semantic_stuff`` arg-max over stuff classes, ``channel`` / ``channel_second`` best and
    second-best object channel, ``embedding`` (H, W, E) or None."""

    semantic: np.ndarray
    semantic_stuff: np.ndarray
    channel: np.ndarray
    channel_second: np.ndarray
    embedding: np.ndarray | None


class Method(nn.Module):
    """Base class of the training methods (see the module docstring).

    Args:
        config: the run's configuration.
        num_classes: semantic classes of the scene.
        channels: SDF channels of the model (:meth:`channel_count`).
    """

    name: ClassVar[str] = ""
    label_comprehensive: ClassVar[bool] = False  # batches cover every label of a frame (clustering losses)
    classes_in_channels: ClassVar[bool] = False  # channel u is class u (can lend its classes to another run)
    uses_semantic_head: ClassVar[bool] = True  # trains (and renders classes from) the semantic head
    uses_opacity: ClassVar[bool] = True  # trains object opacities

    def __init__(self, config: Config, num_classes: int, channels: int) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.channels = channels
        self.votes = ChannelVotes(channels, num_classes)

    @classmethod
    def channel_count(cls, config: Config, num_classes: int) -> int:
        """SDF channels this method needs for a scene with ``num_classes`` classes."""
        return config.field.channels

    # ------------------------------------------------------------------------------ training

    def pixel_targets(self, scene: Scene, labels: LabelMaps) -> PixelTargets:
        """Per-pixel training targets (:data:`PixelTargets`): the label maps and the segment targets;
        a method whose terms read more at a ray adds it here. Says so when a frame holds more
        segments than the object channels."""
        targets = {"semantic": labels.semantic, "instance": labels.instance, "confidence": labels.confidence}
        targets["segment"] = self.segment_targets(labels, scene)
        lost = ignored_segment_frames(targets)
        if lost:
            print(
                f"note: {lost} frames hold more segments than the {self.channels - 1} object channels; their smallest "
                "segments are ignored (train with --channels auto or a larger number)", file=sys.stderr,
            )
        return targets

    def segment_targets(self, labels: LabelMaps, scene: Scene) -> np.ndarray:
        """Per-pixel targets of the segmentation terms (F, H, W) int16 from the label maps.

        Default: each frame's instance ids mapped to random distinct object channels (ids mean
        nothing across views); 0 (stuff / none) stays 0, -1 = ignored.
        """
        return per_frame_channels(labels.instance, self.channels, np.random.default_rng(self.config.train.seed))

    def training_request(self, normals: bool) -> RenderRequest:
        """What the model renders for a training step (``normals`` when normal supervision is on)."""
        return RenderRequest(normals=normals, opacity=self.uses_opacity, semantics=self.uses_semantic_head, surface_points=True)

    def loss_terms(self, model: Model, out: RenderOutput, rays: RayBatch, progress: float, *, generator: torch.Generator) -> Terms:
        """Every weighted term of a step: reconstruction, geometry, then the method's segmentation
        terms. ``progress`` is the fraction of the run done."""
        loss = self.config.loss
        terms = common.reconstruction_terms(out, rays, loss)
        terms.update(common.geometry_terms(model, out, loss, progress, generator=generator))
        terms.update(self.segmentation_terms(out, rays))
        return terms

    def segmentation_terms(self, out: RenderOutput, rays: RayBatch) -> Terms:
        raise NotImplementedError

    # ---------------------------------------------------------------------------- inference

    def render_request(self, normals: bool) -> RenderRequest:
        """What the model renders for a test view."""
        return RenderRequest(normals=normals, opacity=True, semantics=self.uses_semantic_head and not self.classes_in_channels)

    def class_scores(self, out: RenderOutput) -> torch.Tensor:
        """(R, K) per-ray class scores of a rendered view (classes absent from the training labels
        are masked by the caller): the semantic head's, or without one, the class the training
        labels voted for the ray's object channel (a channel without votes is void)."""
        if self.uses_semantic_head:
            return out.semantics
        voted = self.votes.classes().clamp_min(0)[out.opacity.argmax(-1)]
        return torch.nn.functional.one_hot(voted, self.num_classes).to(out.opacity.dtype)

    def fuse_labels(
        self,
        views: Sequence[LabelView],
        thing_classes: tuple[int, ...],
        min_segment_fraction: float,
        class_views: Sequence[LabelView] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-view (semantic, instance) maps: instance = object channel, one class per channel
        (training votes, else render-time votes), background pixels get their stuff class.

        ``class_views``: views of a run whose classes replace these (the paper's two-run panoptic
        path: each instance channel takes the majority of the other run's classes).
        """
        source = class_views if class_views is not None else views
        return fuse_panoptic(
            [v.semantic for v in source],
            [v.channel for v in views],
            thing_classes,
            [v.semantic_stuff for v in source],
            voted_classes=None if class_views is not None else self.votes.classes().cpu().numpy(),
            second_channels=[v.channel_second for v in views],
            min_segment_fraction=min_segment_fraction,
        )
