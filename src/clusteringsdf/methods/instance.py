"""ClusteringSDF's instance mode (paper Eq. 11): clustering of the per-view instance labels with the
foreground/background and cross-view terms, our class-coherence term (a thing ray's share of
channels voted for another class) and our separation term (two 3D places of one class
sharing a channel, see sampling/places.py). Classes come from the channel votes, or from a
semantic-mode run merged at render time (the paper's two-run panoptic path)."""

from __future__ import annotations

import sys

import torch

from ..data.scene import Scene
from ..losses import clustering
from ..model import RenderOutput
from ..sampling.frames import LabelMaps, PixelTargets
from ..sampling.places import place_map
from ..sampling.rays import RayBatch
from .clustering import ClusteringSDF
from .terms import Term, Terms


class Instance(ClusteringSDF):
    name = "instance"

    def pixel_targets(self, scene: Scene, labels: LabelMaps) -> PixelTargets:
        """Adds ``place``, the 3D place of each pixel's thing segment (:mod:`clusteringsdf.sampling.places`),
        when the separation term is on and the scene has depth (without depth: a note, and no term)."""
        targets = super().pixel_targets(scene, labels)
        c = self.config.clustering
        if c.separation > 0 and scene.depths is None:
            print("note: the scene has no depth; the separation term (clustering.separation) needs it and is off", file=sys.stderr)
        elif c.separation > 0:
            targets["place"] = place_map(scene, targets["segment"], labels.instance, labels.semantic, gap=c.place_gap)
        return targets

    def mode_terms(self, out: RenderOutput, rays: RayBatch, probabilities: torch.Tensor, groups: clustering.Groups) -> Terms:
        c = self.config.clustering
        targets = rays.targets
        terms: Terms = {}
        if c.bg > 0 or c.fg > 0:  # lambda4 / lambda5 are applied inside the term
            terms["fgbg"] = Term(clustering.foreground_background_loss(out.opacity, targets["segment"], c.bg, c.fg), 1.0)
        semantic = targets["semantic"]
        thing_semantic = torch.where(targets["instance"] > 0, semantic, torch.full_like(semantic, -1))
        if c.cross_view > 0:
            terms["cross_view"] = Term(clustering.cross_view_loss(probabilities, thing_semantic, rays.frame), c.cross_view)
        if c.class_coherence > 0:
            value = clustering.class_coherence_loss(probabilities, thing_semantic, targets["confidence"], self.votes.classes())
            terms["class_coherence"] = Term(value, c.class_coherence)
        if "place" in targets:  # places are of thing segments only
            terms["separation"] = Term(clustering.separation_loss(out.opacity, targets["place"], thing_semantic), c.separation)
        return terms
