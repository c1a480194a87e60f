"""ClusteringSDF's instance mode (paper Eq. 11): clustering of the per-view instance labels with the
foreground/background and cross-view terms, our class-coherence term (a thing ray's share of
channels voted for another class) and our separation term (segments of one class apart in 3D
sharing a channel). Classes come from the channel votes, or from a
semantic-mode run merged at render time (the paper's two-run panoptic path)."""

from __future__ import annotations

import torch

from ..losses import clustering
from ..model import RenderOutput
from ..sampling.rays import RayBatch
from .clustering import ClusteringSDF
from .terms import Term, Terms


class Instance(ClusteringSDF):
    name = "instance"

    def mode_terms(self, out: RenderOutput, rays: RayBatch, probabilities: torch.Tensor, groups: clustering.Groups) -> Terms:
        c = self.config.clustering
        terms: Terms = {}
        if c.use_fgbg:  # lambda4 / lambda5 are applied inside the term
            terms["fgbg"] = Term(clustering.foreground_background_loss(out.opacity, rays.segment, c.bg, c.fg), 1.0)
        thing_semantic = torch.where(rays.instance > 0, rays.semantic, torch.full_like(rays.semantic, -1))
        if c.use_crossview:
            terms["cross_view"] = Term(clustering.cross_view_loss(probabilities, thing_semantic, rays.frame), c.cross_view)
        if c.class_coherence > 0:
            value = clustering.class_coherence_loss(probabilities, thing_semantic, rays.confidence, self.votes.classes())
            terms["class_coherence"] = Term(value, c.class_coherence)
        if c.separation > 0:
            depth = out.depth.detach() if rays.depth is None else torch.where(rays.depth > 0, rays.depth, out.depth.detach())
            points = rays.origins + rays.directions * (depth / rays.dz).unsqueeze(-1)
            thing_segment = torch.where(thing_semantic >= 0, rays.segment, torch.full_like(rays.segment, -1))
            value = clustering.separation_loss(out.opacity, points, thing_segment, thing_semantic, rays.frame)
            terms["separation"] = Term(value, c.separation)
        return terms
