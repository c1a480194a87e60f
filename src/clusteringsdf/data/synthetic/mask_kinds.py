"""The kinds of machine labels a synthetic scene can carry (``generate_scene(masks=...)``).

* ``m2f``: Mask2Former-like panoptic labels with classes (:mod:`.machine_labels`), the default;
* ``sam``: class-agnostic masks at several granularities, like SAM's automatic mask generator (:mod:`.sam_masks`);
* ``fragments``: class-agnostic colour-and-depth superpixels (:mod:`.fragments`).

The class-agnostic kinds write the class-agnostic ``segmentation_data.pkl`` (:func:`class_agnostic_data`)
and keep the ground truth as it is for ``m2f``: ``rs_semantics`` in the reduced ScanNet classes, named
by the ``rs_*`` class keys (:data:`~clusteringsdf.data.classes.GROUND_TRUTH_CLASS_KEYS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import layout
from ..classes import NUM_CLASSES, REDUCED_SCANNET_CLASSES, STUFF_CLASSES, THING_CLASSES, class_agnostic_data
from .fragments import FRAGMENTS, fragment_frame
from .machine_labels import FrameLabels, IdCounters
from .room import Room
from .sam_masks import SAM_LEVELS, object_frames, sam_frame, world_points

MASK_KINDS = ("m2f", "sam", "fragments")


def mask_parameters(masks: str, noise: str) -> dict:
    """The parameters of a class-agnostic kind at a noise level (fragments have one setting)."""
    return asdict(SAM_LEVELS[noise]) if masks == "sam" else asdict(FRAGMENTS)


class AgnosticLabeller:
    """Class-agnostic machine labels of the frames of a scene, in frame order.

    Reads back each frame's written colour, depth and normals (what a segmenter sees) and takes
    its object map (H, W) from the renderer. ``frame_rng(f)`` is frame ``f``'s generator.
    """

    def __init__(self, masks: str, room: Room, k: np.ndarray, poses: np.ndarray, *, out_dir: Path, noise: str,
                 frame_rng: Callable[[int], np.random.Generator]) -> None:
        if masks not in ("sam", "fragments"):
            raise ValueError(f"not a class-agnostic mask kind: '{masks}'")
        self.masks, self.k, self.poses, self.out_dir, self.frame_rng = masks, k, poses, out_dir, frame_rng
        self.params = SAM_LEVELS[noise]
        self.frames = object_frames(room, self.params.part_axis_ratio)
        self.counters = IdCounters()

    def __call__(self, f: int, name: str, objects: np.ndarray) -> FrameLabels:
        depth = layout.read_depth(self.out_dir / "depth" / f"{name}.png").astype(np.float64)
        rng = self.frame_rng(f)
        if self.masks == "fragments":
            color = layout.read_color(self.out_dir / "color" / f"{name}.png")
            return fragment_frame(color, depth, self.frames.background[objects], rng=rng, counters=self.counters)
        rotation = self.poses[f][:3, :3]
        normals = layout.read_normal(self.out_dir / "normal" / f"{name}.png").astype(np.float64) @ rotation.T
        points = world_points(depth, self.k, self.poses[f])
        return sam_frame(objects, points, normals, self.frames, params=self.params, rng=rng, counters=self.counters)


def agnostic_segmentation_data(room: Room) -> dict:
    """``segmentation_data.pkl`` of a class-agnostic synthetic scene: the class-agnostic contract for
    the machine labels, the reduced ScanNet classes of the ground truth under the ``rs_*`` keys."""
    return {
        **class_agnostic_data(),
        "rs_num_semantic_classes": NUM_CLASSES,
        "rs_fg_classes": list(THING_CLASSES),
        "rs_bg_classes": list(STUFF_CLASSES),
        "rs_class_names": dict(REDUCED_SCANNET_CLASSES),
        "rs_instance_to_semantic": {o.instance_id: o.class_id for o in room.objects if o.is_thing},
    }
