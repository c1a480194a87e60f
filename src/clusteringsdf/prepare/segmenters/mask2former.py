"""Mask2Former (``transformers``) panoptic segmentation from a local checkpoint folder or a model id.

Writes semantics, instances (thing segments) and confidence (the segment's score). Classes are the
checkpoint's own ``id2label``, shifted by one (class id = label id + 1; 0 = void). Which of them are
things: a ``thing_classes.json`` in the checkpoint folder (a JSON list of label names or ids) when
present, otherwise by name: a label is stuff when it is one of COCO panoptic's stuff categories
(``wall-brick``, ``floor-other-merged``, ...) or its first word is a stuff word (wall, floor,
ceiling, sky, road, grass, ...), and a thing otherwise. Hugging Face's Mask2Former configs carry no
thing/stuff flag, so a checkpoint trained on another label set should ship ``thing_classes.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import ClassList, FrameMasks, Segmenter
from .hf import checkpoint, load_pretrained

__all__ = ["Mask2FormerSegmenter", "split_things"]

# COCO panoptic's 53 stuff categories as named in its category list
COCO_STUFF = frozenset(
    "banner blanket bridge cardboard counter curtain door-stuff floor-wood flower fruit gravel house light mirror-stuff net "
    "pillow platform playingfield railroad river road roof sand sea shelf snow stairs tent towel wall-brick wall-stone "
    "wall-tile wall-wood water-other window-blind window-other tree-merged fence-merged ceiling-merged sky-other-merged "
    "cabinet-merged table-merged floor-other-merged pavement-merged mountain-merged grass-merged dirt-merged paper-merged "
    "food-other-merged building-other-merged rock-merged wall-other-merged rug-merged".split()
)
STUFF_WORDS = frozenset(
    "wall floor ceiling sky road grass ground earth sidewalk pavement building house mountain hill tree sea river water lake "
    "sand snow field rock dirt gravel path stairs railing fence rug carpet curtain blind background void other otherprop "
    "stuff".split()
)


def split_things(id2label: dict[int, str], weights: Path) -> tuple[set[int], set[int]]:
    """Label ids of things and of stuff (see the module docstring)."""
    path = Path(weights) / "thing_classes.json"
    if path.is_file():
        try:
            listed = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not valid JSON ({exc})") from None
        if not isinstance(listed, list):
            raise DataError(path, "must be a JSON list of label names or ids")
        by_name = {name: i for i, name in id2label.items()}
        things = set()
        for item in listed:
            if isinstance(item, int) and item in id2label:
                things.add(item)
            elif isinstance(item, str) and item in by_name:
                things.add(by_name[item])
            else:
                raise DataError(path, f"'{item}' is not a label of the checkpoint")
        return things, set(id2label) - things
    things, stuff = set(), set()
    for label_id, name in id2label.items():
        lowered = name.lower().strip()
        first = re.split(r"[-_ ,/]", lowered)[0]
        (stuff if lowered in COCO_STUFF or first in STUFF_WORDS or lowered.endswith("-stuff") else things).add(label_id)
    return things, stuff


class Mask2FormerSegmenter(Segmenter):
    """Panoptic Mask2Former on CPU (or ``device``) from a local checkpoint or a model id (:mod:`.hf`); class-aware."""

    name = "mask2former"

    def __init__(self, weights: str | Path | None, device: str = "cpu", score_threshold: float = 0.5, overlap_threshold: float = 0.8) -> None:
        weights, config = checkpoint(weights, "--segmenter mask2former", ("mask2former",), "facebook/mask2former-swin-large-coco-panoptic")
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        self.processor, self.model = load_pretrained(
            weights, AutoImageProcessor, Mask2FormerForUniversalSegmentation, device=device, name="Mask2Former"
        )
        self.device, self.score_threshold, self.overlap_threshold = device, score_threshold, overlap_threshold
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or self.model.config.id2label).items()}
        self.things, self.stuff = split_things(id2label, Path(weights))
        names = {0: "void", **{label + 1: name for label, name in id2label.items()}}
        self._classes = ClassList(names, tuple(sorted(t + 1 for t in self.things)), tuple(sorted(s + 1 for s in self.stuff)))

    @property
    def classes(self) -> ClassList:
        return self._classes

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None, k: np.ndarray | None) -> FrameMasks:
        import torch

        height, width = rgb.shape[:2]
        inputs = self.processor(images=rgb, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_panoptic_segmentation(
            outputs, threshold=self.score_threshold, overlap_mask_area_threshold=self.overlap_threshold, label_ids_to_fuse=self.stuff,
            target_sizes=[(height, width)],
        )[0]
        segmentation = result["segmentation"].cpu().numpy().astype(np.int64)
        semantics = np.zeros((height, width), dtype=np.int32)
        instance = np.zeros((height, width), dtype=np.int32)
        confidence = np.zeros((height, width), dtype=np.float32)
        next_id = 1
        for info in result["segments_info"]:
            mask = segmentation == int(info["id"])
            label = int(info["label_id"])
            semantics[mask] = label + 1
            confidence[mask] = float(info.get("score", 1.0))
            if label in self.things:
                instance[mask] = next_id
                next_id += 1
        return FrameMasks(instance=instance, semantics=semantics, confidence=confidence)
