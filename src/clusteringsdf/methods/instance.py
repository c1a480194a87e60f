"""ClusteringSDF's instance mode (paper Eq. 11): clustering of the per-view instance labels with the
foreground/background and cross-view terms, our class-coherence term (a thing ray's share of
channels voted for another class) and our separation term (two 3D places of one class
sharing a channel, see sampling/places.py). Classes come from the channel votes, or from a
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

    def place_gap(self) -> float | None:
        c = self.config.clustering
        return c.place_gap if c.separation > 0 else None

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
        if c.separation > 0 and rays.place is not None:  # places are of thing segments only
            terms["separation"] = Term(clustering.separation_loss(out.opacity, rays.place, thing_semantic), c.separation)
        return terms
