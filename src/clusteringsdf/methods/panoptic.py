"""Panoptic ClusteringSDF, one model for both predictions (our default for raw machine labels): the
instance mode's clustering plus the semantic head."""

from __future__ import annotations

import torch

from ..losses import clustering
from ..model import RenderOutput
from ..sampling.rays import RayBatch
from . import common
from .instance import Instance
from .terms import Terms


class Panoptic(Instance):
    name = "panoptic"
    uses_semantic_head = True

    def mode_terms(self, out: RenderOutput, rays: RayBatch, probabilities: torch.Tensor, groups: clustering.Groups) -> Terms:
        terms = super().mode_terms(out, rays, probabilities, groups)
        terms.update(common.semantic_head_terms(out, rays, self.config.loss))
        return terms
