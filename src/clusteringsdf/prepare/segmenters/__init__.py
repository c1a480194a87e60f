"""Segmenters behind one interface (:class:`Segmenter`): ``classical`` (built in), ``mask2former``
and ``sam`` (``transformers``, a local checkpoint or a model id). Imported masks are read by :mod:`..mask_import`."""

from __future__ import annotations

from pathlib import Path

from .base import ClassList, FrameMasks, Segmenter, class_agnostic_data, class_agnostic_semantics
from .classical import ClassicalOptions, ClassicalSegmenter

__all__ = [
    "SEGMENTERS",
    "ClassList",
    "ClassicalOptions",
    "ClassicalSegmenter",
    "FrameMasks",
    "Segmenter",
    "build_segmenter",
    "class_agnostic_data",
    "class_agnostic_semantics",
]

SEGMENTERS = ("classical", "mask2former", "sam", "import")


def build_segmenter(name: str, weights: str | Path | None = None, device: str = "cpu") -> Segmenter:
    """The segmenter called ``name`` (``import`` is not a segmenter: see :mod:`..mask_import`)."""
    if name == "classical":
        if weights is not None:
            raise ValueError("--segmenter classical takes no --segmenter-weights")
        return ClassicalSegmenter()
    if name == "mask2former":
        from .mask2former import Mask2FormerSegmenter

        return Mask2FormerSegmenter(weights, device=device)
    if name == "sam":
        from .sam import SamSegmenter

        return SamSegmenter(weights, device=device)
    raise ValueError(f"unknown segmenter '{name}' (expected one of {', '.join(SEGMENTERS[:3])})")
