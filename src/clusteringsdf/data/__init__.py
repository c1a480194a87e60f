"""Scene data: the Panoptic Lifting layout (readers, writers, validation) and synthetic scenes."""

from .scene import Normalization, Scene, SegmentationClasses, load_scene

__all__ = ["Normalization", "Scene", "SegmentationClasses", "load_scene"]
