"""ObjectSDF++'s supervised segmentation: each label is an object channel, opacity BCE (or NLL)
against it, plus the semantic head. The upper bound on view-consistent GT labels; the baseline on raw
machine labels (whose ids are mapped to random channels per frame, as ObjectSDF++ sees them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..losses import segmentation
from ..model import RenderOutput
from ..sampling.frames import scene_channels
from ..sampling.rays import RayBatch
from . import common
from .base import Method
from .terms import Term, Terms


class ObjectSDF(Method):
    name = "objectsdf"

    def segment_targets(self, semantic: np.ndarray, instance: np.ndarray, source: str, scene_root: Path) -> np.ndarray:
        """View-consistent GT ids: one scene-wide channel table; machine ids: random per frame."""
        if source == "gt":
            return scene_channels(instance, self.channels, scene_root / "rs_instance")
        return super().segment_targets(semantic, instance, source, scene_root)

    def segmentation_terms(self, out: RenderOutput, rays: RayBatch) -> Terms:
        loss = self.config.loss
        if loss.segmentation_loss == "nll":
            terms = {"opacity_nll": Term(segmentation.opacity_nll(out.opacity, rays.segment), loss.opacity_bce)}
        else:
            terms = {"opacity_bce": Term(segmentation.opacity_bce(out.opacity, rays.segment), loss.opacity_bce)}
        terms.update(common.semantic_head_terms(out, rays, loss))
        return terms
