"""The :class:`Segmenter` interface: one frame in, per-frame (view-inconsistent) masks out.

A segmenter is either class-aware (it has a :class:`ClassList`: names, things and stuff; it writes
semantics) or class-agnostic (instances only; the scene then gets the class-agnostic contract of
:func:`class_agnostic_data`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ...data.classes import AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT, AGNOSTIC_UNLABELLED, class_agnostic_data

__all__ = ["ClassList", "FrameMasks", "Segmenter", "class_agnostic_data", "class_agnostic_semantics"]

@dataclass(frozen=True)
class ClassList:
    """Classes of a class-aware segmenter; id 0 is void, ``names`` maps every id to a name."""

    names: dict[int, str]
    things: tuple[int, ...]
    stuff: tuple[int, ...]

    def segmentation_data(self) -> dict:
        """The ``segmentation_data.pkl`` content (void 0 counted as stuff, as the synthetic scenes do)."""
        return {
            "fg_classes": sorted(self.things),
            "bg_classes": sorted({0, *self.stuff}),
            "num_semantic_classes": max(self.names) + 1,
            "class_names": dict(sorted(self.names.items())),
        }


def class_agnostic_semantics(instance: np.ndarray, labelled: np.ndarray | None = None) -> np.ndarray:
    """Semantics of the class-agnostic contract: 2 where ``instance`` > 0, 1 elsewhere, 0 where
    ``labelled`` (bool, same shape) is False."""
    semantics = np.where(instance > 0, AGNOSTIC_OBJECT, AGNOSTIC_BACKGROUND).astype(np.int32)
    if labelled is not None:
        semantics[~labelled] = AGNOSTIC_UNLABELLED
    return semantics


@dataclass
class FrameMasks:
    """One frame's masks.

    Attributes:
        instance: int32 (H, W) instance ids local to the frame, 0 = no instance (stuff / background).
        semantics: int32 (H, W) class ids (0 = void) for class-aware segmenters, else None.
        confidence: float32 (H, W) in [0, 1], or None (= 1 everywhere).
        labelled: bool (H, W), False where the segmenter gave no label (class-agnostic only), or None.
    """

    instance: np.ndarray
    semantics: np.ndarray | None = None
    confidence: np.ndarray | None = None
    labelled: np.ndarray | None = None


class Segmenter(ABC):
    """Produces :class:`FrameMasks` for each frame of a capture."""

    name: str = ""

    @property
    def classes(self) -> ClassList | None:
        """The class list of a class-aware segmenter; None for a class-agnostic one."""
        return None

    @abstractmethod
    def segment(self, rgb: np.ndarray, depth: np.ndarray | None, k: np.ndarray | None) -> FrameMasks:
        """Masks of one frame.

        Args:
            rgb: uint8 (H, W, 3).
            depth: float32 (H, W) metres (0 = missing), or None.
            k: pinhole K (3, 3) of the frame, or None.
        """
