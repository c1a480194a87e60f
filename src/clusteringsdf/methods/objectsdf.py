"""ObjectSDF++'s supervised segmentation: each label is an object channel, opacity BCE (or NLL)
against it, plus the semantic head. The upper bound on view-consistent GT labels; the baseline on raw
machine labels (whose ids are mapped to random channels per frame, as ObjectSDF++ sees them)."""

from __future__ import annotations

import numpy as np

from ..data.scene import Scene
from ..losses import segmentation
from ..model import RenderOutput
from ..sampling.frames import LabelMaps, scene_channels
from ..sampling.rays import RayBatch
from . import common
from .base import Method
from .terms import Term, Terms


class ObjectSDF(Method):
    name = "objectsdf"

    def segment_targets(self, labels: LabelMaps, scene: Scene) -> np.ndarray:
        """View-consistent GT ids: one scene-wide channel table; machine ids: random per frame."""
        if self.config.data.labels == "gt":
            return scene_channels(labels.instance, self.channels, scene.root / "rs_instance")
        return super().segment_targets(labels, scene)

    def segmentation_terms(self, out: RenderOutput, rays: RayBatch) -> Terms:
        loss = self.config.loss
        opacity_loss = segmentation.opacity_nll if loss.opacity_loss == "nll" else segmentation.opacity_bce
        terms = {f"opacity_{loss.opacity_loss}": Term(opacity_loss(out.opacity, rays.targets["segment"]), loss.opacity)}
        terms.update(common.semantic_head_terms(out, rays, loss))
        return terms
