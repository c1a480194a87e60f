"""Contrastive Lift's slow-fast loss on the same backbone (the comparison baseline, reference §3):
an embedding head trained on thing rays against an EMA copy of itself (the "slow" head, state of
this method), plus the semantic head; at inference thing pixels are clustered by mean-shift."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..losses import contrastive
from ..model import RenderOutput, RenderRequest
from ..sampling.rays import RayBatch
from . import common
from .base import LabelView, Method
from .embedding_clustering import cluster_embeddings
from .fusion import fuse_panoptic
from .terms import Term, Terms

SLOW = "embedding_slow"


class Contrastive(Method):
    name = "contrastive"
    label_comprehensive = True
    uses_opacity = False

    def __init__(self, config: Config, num_classes: int, channels: int) -> None:
        super().__init__(config, num_classes, channels)
        field = config.field
        # The slow head: same shape as the field's embedding head, its own random init (as in
        # Contrastive Lift), never optimised, an EMA of the fast head.
        self.slow_embedding_head = nn.Sequential(
            nn.Linear(field.feature_dim, field.semantic_hidden_dim), nn.ReLU(), nn.Linear(field.semantic_hidden_dim, field.embedding_dim)
        ).requires_grad_(False)

    def training_request(self, normals: bool) -> RenderRequest:
        return RenderRequest(
            normals=normals, opacity=False, semantics=True, embedding=True, surface_points=True,
            feature_heads=((SLOW, self.slow_embedding_head, self.config.field.embedding_dim),),
        )

    def segmentation_terms(self, out: RenderOutput, rays: RayBatch) -> Terms:
        """The slow-fast loss on thing rays (labels = per-view instance ids), plus the semantic head."""
        segment = rays.targets["segment"]
        things = torch.where(rays.targets["instance"] > 0, segment, torch.zeros_like(segment))
        concentration, contrast = contrastive.slow_fast_loss(out.embedding, out.extras[SLOW], things, rays.frame, confidence=rays.targets["confidence"])
        terms = {"concentration": Term(concentration, 1.0), "contrastive": Term(contrast, 1.0)}
        terms.update(common.semantic_head_terms(out, rays, self.config.loss))
        return terms

    def render_request(self, normals: bool) -> RenderRequest:
        return RenderRequest(normals=normals, opacity=True, semantics=True, embedding=True)

    def fuse_labels(
        self,
        views: Sequence[LabelView],
        thing_classes: tuple[int, ...],
        min_segment_fraction: float,
        class_views: Sequence[LabelView] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Thing pixels of all views are clustered in embedding space; clusters act as channels."""
        source = class_views if class_views is not None else views
        semantics = [v.semantic for v in source]
        clusters = cluster_embeddings([v.embedding for v in views], [np.isin(s, thing_classes) for s in semantics])
        return fuse_panoptic(semantics, clusters, thing_classes, [v.semantic_stuff for v in source], min_segment_fraction=min_segment_fraction)
