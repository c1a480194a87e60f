"""The terms every ClusteringSDF method shares (paper Eq. 4-7): cluster differentiation, the
per-ray regulariser, our intra-cluster compactness and the one-hot term, on the softmax over channels
of each ray's object opacities, with rays grouped by (frame, label)."""

from __future__ import annotations

import torch

from ..losses import clustering
from ..model import RenderOutput
from ..sampling.rays import RayBatch
from .base import Method
from .terms import Term, Terms


class ClusteringSDF(Method):
    """Base of the instance, semantic and panoptic methods; subclasses add :meth:`mode_terms`."""

    label_comprehensive = True
    uses_semantic_head = False

    def segmentation_terms(self, out: RenderOutput, rays: RayBatch) -> Terms:
        c = self.config.clustering
        opacity = out.opacity
        probabilities = torch.softmax(opacity, dim=-1)
        segment = rays.targets["segment"]
        groups = clustering.make_groups(segment, rays.frame)
        kept = probabilities[groups.keep]
        terms: Terms = {}
        if c.diff > 0:
            terms["diff"] = Term(clustering.differentiation_loss(clustering.cluster_centres(kept, groups), groups), c.diff)
        if c.reg > 0:
            terms["reg"] = Term(clustering.regularization_loss(kept, groups, c.reg_axis), c.reg)
        if c.compact > 0:
            terms["compact"] = Term(clustering.regularization_loss(kept, groups, "rays"), c.compact)
        if c.onehot > 0:
            terms["onehot"] = Term(clustering.onehot_loss(opacity, segment), c.onehot)
        terms.update(self.mode_terms(out, rays, probabilities, groups))
        return terms

    def mode_terms(self, out: RenderOutput, rays: RayBatch, probabilities: torch.Tensor, groups: clustering.Groups) -> Terms:
        raise NotImplementedError
