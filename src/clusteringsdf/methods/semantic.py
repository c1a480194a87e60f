"""ClusteringSDF's semantic mode (paper Eq. 10): one channel per class (channel u = class u), the
clustering terms on the per-view semantic labels, the semantic matching term, channel 0 (void)
suppressed on every ray, and our optional per-ray class term (``clustering.sem_ray``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..config import Config
from ..data.scene import Scene
from ..losses import clustering
from ..model import RenderOutput
from ..sampling.frames import LabelMaps
from ..sampling.rays import RayBatch
from .base import LabelView
from .clustering import ClusteringSDF
from .terms import Term, Terms


class Semantic(ClusteringSDF):
    name = "semantic"
    classes_in_channels = True

    @classmethod
    def channel_count(cls, config: Config, num_classes: int) -> int:
        """At least one channel per class."""
        return max(config.field.channels, num_classes)

    def segment_targets(self, labels: LabelMaps, scene: Scene) -> np.ndarray:
        """The class of each pixel (= its channel); void -> -1 (ignored). int16 (F, H, W)."""
        return np.where(labels.semantic > 0, labels.semantic, -1).astype(np.int16)

    def mode_terms(self, out: RenderOutput, rays: RayBatch, probabilities: torch.Tensor, groups: clustering.Groups) -> Terms:
        c = self.config.clustering
        opacity, labels, confidence = out.opacity, rays.targets["segment"], rays.targets["confidence"]
        terms: Terms = {}
        if c.fg > 0:  # channel 0 (void) is suppressed on every ray, as in the published semantic mode
            terms["fgbg"] = Term(c.fg * opacity[:, 0].abs().mean(), 1.0)
        if c.sem > 0:
            terms["sem"] = Term(clustering.semantic_matching_loss(opacity[groups.keep], groups, confidence[groups.keep]), c.sem)
        if c.sem_ray > 0:
            terms["sem_ray"] = Term(clustering.semantic_ray_loss(opacity, labels, confidence), c.sem_ray)
        return terms

    def class_scores(self, out: RenderOutput) -> torch.Tensor:
        """Classes from the object opacities: channel u = class u, channel 0 (void) excluded."""
        scores = out.opacity[:, : self.num_classes].clone()
        scores[:, 0] = -1.0
        return scores

    def fuse_labels(
        self,
        views: Sequence[LabelView],
        thing_classes: tuple[int, ...],
        min_segment_fraction: float,
        class_views: Sequence[LabelView] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Classes only (instance 0 everywhere), unless another run's classes are merged in."""
        if class_views is None:
            semantics = [v.semantic for v in views]
            return semantics, [np.zeros_like(s) for s in semantics]
        return super().fuse_labels(views, thing_classes, min_segment_fraction, class_views)
