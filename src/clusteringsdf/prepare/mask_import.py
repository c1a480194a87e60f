"""Existing masks in common formats, read per frame (matched by file stem).

Formats (``--masks-format``):

* ``coco-panoptic``: COCO / detectron2 panoptic PNGs (RGB, id = R + 256 G + 256^2 B) with either one
  COCO panoptic JSON in the folder (``annotations[].file_name`` + ``segments_info`` and
  ``categories`` with ``isthing``) or one ``<frame>.json`` per frame (detectron2's
  ``segments_info`` list: ``id``, ``category_id``, ``isthing``). Class id = position of the category
  in the sorted category ids + 1 (0 = void); things get instances.
* ``instance-png``: one instance-id PNG per frame (8/16-bit or palette), 0 = no instance; no classes.
* ``binary-masks``: a folder per frame holding one binary PNG per mask (what SAM's automatic mask
  generator writes); painted largest first so smaller masks stay on top; no classes.
* ``panoptic-lifting``: a scene-like folder with ``m2f_semantics/``, ``m2f_instance/``, optional
  ``m2f_probabilities/`` and ``segmentation_data.pkl``.

Masks of another size than the frames with the same aspect ratio are resized (nearest).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import layout
from ..data.scene import read_segmentation_classes
from ..errors import DataError
from .segmenters.base import ClassList, FrameMasks

__all__ = ["MASK_FORMATS", "MaskImporter"]

MASK_FORMATS = ("coco-panoptic", "instance-png", "binary-masks", "panoptic-lifting")


def _fit(array: np.ndarray, hw: tuple[int, int], path: Path) -> np.ndarray:
    if array.shape[:2] == tuple(hw):
        return array
    h, w = array.shape[:2]
    if abs(w / h - hw[1] / hw[0]) > 0.01:
        raise DataError(path, f"mask is {w}x{h} but the frames are {hw[1]}x{hw[0]} (another aspect ratio)")
    mode = "F" if array.dtype.kind == "f" else "I"
    resized = Image.fromarray(array.astype(np.float32 if mode == "F" else np.int32), mode=mode).resize((hw[1], hw[0]), Image.NEAREST)
    return np.asarray(resized).astype(array.dtype)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(path, "mask file not found")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated mask image ({exc})") from None
    return image


class MaskImporter:
    """Reads imported masks frame by frame; :attr:`classes` is None for class-agnostic formats."""

    def __init__(self, folder: Path, fmt: str) -> None:
        folder = Path(folder)
        if fmt not in MASK_FORMATS:
            raise ValueError(f"unknown mask format '{fmt}' (expected one of {', '.join(MASK_FORMATS)})")
        if not folder.is_dir():
            raise DataError(folder, "mask folder not found")
        self.folder, self.format = folder, fmt
        self.classes: ClassList | None = None
        self._segments: dict[str, list[dict]] = {}
        self._category_class: dict[int, int] = {}
        self._thing_categories: set[int] = set()
        if fmt == "coco-panoptic":
            self._read_coco_json()
        elif fmt == "panoptic-lifting":
            classes = read_segmentation_classes(folder / layout.SEGMENTATION_FILE)
            if not classes.class_agnostic:
                names = {c: classes.names.get(c, f"class_{c}") for c in range(classes.num_classes)}
                names[0] = names.get(0, "void")
                self.classes = ClassList(names, classes.thing_classes, classes.stuff_classes)
            self._agnostic = classes.class_agnostic

    # ------------------------------------------------------------------ COCO / detectron2 panoptic

    def _read_coco_json(self) -> None:
        documents = [p for p in sorted(self.folder.glob("*.json"))]
        shared = None
        for path in documents:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DataError(path, f"not valid JSON ({exc})") from None
            if isinstance(data, dict) and "annotations" in data:
                shared = (path, data)
                break
        if shared is not None:
            path, data = shared
            categories = data.get("categories")
            if not isinstance(categories, list) or not categories:
                raise DataError(path, "COCO panoptic JSON needs a 'categories' list")
            try:
                cats = {int(c["id"]): (str(c.get("name", f"class_{c['id']}")), bool(c.get("isthing", 1))) for c in categories}
                for annotation in data["annotations"]:
                    self._segments[Path(annotation["file_name"]).stem] = list(annotation["segments_info"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(path, f"malformed COCO panoptic JSON ({type(exc).__name__}: {exc})") from None
        else:  # detectron2: one <frame>.json per frame, categories only by id
            cats = {}
            for path in documents:
                try:
                    data = json.loads(path.read_text())
                    segments = data["segments_info"] if isinstance(data, dict) else data
                    for segment in segments:
                        cats[int(segment["category_id"])] = (f"class_{int(segment['category_id'])}", bool(segment.get("isthing", True)))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise DataError(path, f"not a segments_info list ({type(exc).__name__}: {exc})") from None
                self._segments[path.stem] = list(segments)
            if not cats:
                raise DataError(self.folder, "no COCO panoptic JSON and no <frame>.json segments_info files")
        self._category_class = {cat: i + 1 for i, cat in enumerate(sorted(cats))}
        self._thing_categories = {cat for cat, (_, thing) in cats.items() if thing}
        names = {0: "void", **{self._category_class[cat]: name for cat, (name, _) in cats.items()}}
        things = tuple(sorted(self._category_class[c] for c in self._thing_categories))
        stuff = tuple(sorted(self._category_class[c] for c in cats if c not in self._thing_categories))
        self.classes = ClassList(names, things, stuff)

    def _coco_frame(self, name: str, hw: tuple[int, int]) -> FrameMasks:
        path = self.folder / f"{name}.png"
        if name not in self._segments:
            raise DataError(self.folder, f"no segments_info for frame '{name}'")
        image = _open(path)
        if image.mode != "RGB":
            raise DataError(path, f"panoptic PNG must be RGB (id = R + 256 G + 256^2 B), got mode {image.mode}")
        rgb = _fit(np.asarray(image, dtype=np.int64), hw, path)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        semantics = np.zeros(hw, dtype=np.int32)
        instance = np.zeros(hw, dtype=np.int32)
        next_id = 1
        for segment in self._segments[name]:
            try:
                segment_id, category = int(segment["id"]), int(segment["category_id"])
            except (KeyError, TypeError, ValueError):
                raise DataError(path, "a segment lacks an integer 'id' or 'category_id'") from None
            if category not in self._category_class:
                raise DataError(path, f"segment {segment_id} has unknown category {category}")
            mask = ids == segment_id
            semantics[mask] = self._category_class[category]
            if category in self._thing_categories:
                instance[mask] = next_id
                next_id += 1
        return FrameMasks(instance=instance, semantics=semantics)

    # ------------------------------------------------------------------ the others

    def read(self, name: str, hw: tuple[int, int]) -> FrameMasks:
        """Masks of frame ``name`` at the frame size ``hw`` (original, not undistorted, images)."""
        if self.format == "coco-panoptic":
            return self._coco_frame(name, hw)
        if self.format == "instance-png":
            path = layout.find_frame_file(self.folder, name, (".png", ".tif", ".tiff"))
            if path is None:
                raise DataError(self.folder / f"{name}.png", "mask file not found")
            return FrameMasks(instance=_fit(layout.read_label(path).astype(np.int32), hw, path))
        if self.format == "binary-masks":
            return self._binary(name, hw)
        sem_path = self.folder / "m2f_semantics" / f"{name}.png"
        ins_path = self.folder / "m2f_instance" / f"{name}.png"
        semantics = _fit(layout.read_label(sem_path).astype(np.int32), hw, sem_path)
        instance = _fit(layout.read_label(ins_path).astype(np.int32), hw, ins_path)
        confidence = None
        prob_path = self.folder / "m2f_probabilities" / f"{name}.npz"
        if prob_path.is_file():
            _, conf = layout.read_probabilities(prob_path)
            confidence = np.asarray(Image.fromarray(conf.astype(np.float32), mode="F").resize((hw[1], hw[0]), Image.BILINEAR))
        if self._agnostic:
            return FrameMasks(instance=instance, confidence=confidence, labelled=semantics > 0)
        return FrameMasks(instance=instance, semantics=semantics, confidence=confidence)

    def _binary(self, name: str, hw: tuple[int, int]) -> FrameMasks:
        folder = self.folder / name
        if not folder.is_dir():
            raise DataError(folder, "mask folder of this frame not found (binary-masks: one folder of PNG masks per frame)")
        masks = []
        for path in sorted(folder.glob("*.png")):
            array = np.asarray(_open(path))
            if array.ndim == 3:
                array = array[..., 0]
            masks.append(_fit(array > 0, hw, path))
        instance = np.zeros(hw, dtype=np.int32)
        for new_id, mask in enumerate(sorted(masks, key=lambda m: -int(m.sum())), start=1):
            instance[mask] = new_id
        return FrameMasks(instance=instance)
