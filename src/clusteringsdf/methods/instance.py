"""ClusteringSDF's instance mode (paper Eq. 11): clustering of the per-view instance labels with the
foreground/background and cross-view terms, our class-coherence term (a thing ray's share of
channels voted for another class), our separation term (two 3D places of one class
sharing a channel, see sampling/places.py) and our place seed (each place pulled to a channel of its
own early in the run). Classes come from the channel votes, or from a
semantic-mode run merged at render time (the paper's two-run panoptic path)."""

from __future__ import annotations

import sys

import torch

from ..data.scene import Scene
from ..losses import clustering
from ..model import Model, RenderOutput
from ..sampling.frames import LabelMaps, PixelTargets
from ..sampling.places import place_map
from ..sampling.rays import RayBatch
from .clustering import ClusteringSDF
from .terms import Term, Terms


class Instance(ClusteringSDF):
    name = "instance"

    def pixel_targets(self, scene: Scene, labels: LabelMaps) -> PixelTargets:
        """Adds ``place``, the 3D place of each pixel's thing segment (:mod:`clusteringsdf.sampling.places`),
        when the separation term or the place seed is on and the scene has depth (without depth: a
        note, and neither term)."""
        targets = super().pixel_targets(scene, labels)
        c = self.config.clustering
        wanted = ["separation"] if c.separation > 0 else []
        wanted += ["place_seed"] if self.seeds_places else []
        if wanted and scene.depths is None:
            print(f"note: the scene has no depth; {' and '.join(f'clustering.{n}' for n in wanted)} need places (depth) and are off", file=sys.stderr)
        elif wanted:
            targets["place"] = place_map(scene, targets["segment"], labels.instance, labels.semantic, gap=c.place_gap)
        return targets

    @property
    def seeds_places(self) -> bool:
        """The place seed acts in runs of at least ``clustering.place_seed_channels`` channels: fewer
        channels take their objects without it (the room's 32), more do not (a 42-object scene's 48)."""
        c = self.config.clustering
        return c.place_seed > 0 and self.channels >= c.place_seed_channels

    def loss_terms(self, model: Model, out: RenderOutput, rays: RayBatch, progress: float, *, generator: torch.Generator) -> Terms:
        """The clustering method's terms, plus the place seed while ``progress`` is before its end
        (weight falling linearly from ``clustering.place_seed`` to 0)."""
        terms = super().loss_terms(model, out, rays, progress, generator=generator)
        c = self.config.clustering
        if "place" in rays.targets and self.seeds_places and progress < c.place_seed_end:
            weight = c.place_seed * (1.0 - progress / c.place_seed_end)
            terms["place_seed"] = Term(clustering.place_seed_loss(out.opacity, rays.targets["place"]), weight)
        return terms

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
        if "place" in targets and c.separation > 0:  # places are of thing segments only
            terms["separation"] = Term(clustering.separation_loss(out.opacity, targets["place"], thing_semantic), c.separation)
        return terms
