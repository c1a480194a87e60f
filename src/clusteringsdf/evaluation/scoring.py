"""Score a folder of predicted label maps against a scene's GT (``clusteringsdf eval``).

Layout read:

* ``SCENE/splits.json`` — test frames (the ``split`` list; a "val" list stands in for "test");
* ``SCENE/segmentation_data.pkl`` — ``fg_classes`` (things), ``bg_classes`` (stuff, incl. void 0),
  ``num_semantic_classes`` (default: max class + 1), ``class_agnostic`` (scenes without classes:
  scored class-agnostically, see ``evaluate_predictions``), and for a class-agnostic scene whose
  ground truth has classes, those of ``rs_semantics`` under ``rs_fg_classes``, ``rs_bg_classes``,
  ``rs_num_semantic_classes`` (as the synthetic generator writes with ``--masks sam|fragments``);
* GT: ``SCENE/rs_semantics/<f>.png`` and ``SCENE/rs_instance/<f>.png``;
* predictions: ``PRED/pred_semantics/<f>.png`` and ``PRED/pred_instance/<f>.png`` (when there is no
  ``pred_instance/`` folder, ``pred_surrogateid/`` as written by Panoptic Lifting is read instead);
  with ``use_machine_labels`` ``PRED/m2f_semantics/`` and ``PRED/m2f_instance/`` (PRED is a scene);
* optional extras (never with machine labels): ``PRED/rgb/<f>.png`` vs ``SCENE/color/<f>.(jpg|png)``
  gives ``psnr`` (mean over test images, the prediction bilinearly resized to the GT size when the
  sizes differ); ``PRED/depth/<f>.png`` (uint16 mm) vs ``SCENE/depth/<f>.png`` gives the scene-level
  ``depth_abs_rel`` (sum over all valid GT pixels of all frames / their number; the prediction is
  nearest-resized to the GT size when needed); a scene without depth gives ``depth_consistency``
  between neighbouring test views instead (:mod:`.views`). An extra is computed only when its
  files exist for every test frame;
* a scene without ``rs_*`` maps (a prepared capture) is scored on these extras alone, its
  panoptic scores None (``evaluate_predictions``).

Protocols:

* ``native``: scored at the GT resolution; a prediction of another size is resized to the GT size
  with PIL nearest-neighbour sampling.
* ``panoptic-lifting``: prediction and GT label maps are both resized with PIL ``Image.NEAREST`` to
  (width, height) = (512, 512), not preserving the aspect ratio, exactly like the reference scorer.

In both, GT-void pixels (GT class 0) are removed from prediction and GT before PQ and mIoU
(reference §1.2); PQ^scene and the confusion matrix are accumulated over all test frames. Edge
accuracy uses the full frames (GT void forms no GT segment). A missing prediction frame raises
:class:`DataError` naming the file; it is never skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data import layout
from ..data.classes import AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT, ground_truth_class_data
from ..data.scene import segmentation_classes
from ..errors import DataError
from .edges import frame_edge_dice
from .panoptic import PanopticAccumulator, PanopticResult
from .semantic import confusion_matrix, mean_iou
from .views import depth_note, image_scores

__all__ = ["evaluate_predictions", "PROTOCOLS", "PANOPTIC_LIFTING_SIZE"]

PROTOCOLS = ("native", "panoptic-lifting")
PANOPTIC_LIFTING_SIZE = (512, 512)  # (height, width) == (width, height)


def _resize_labels(labels: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """Nearest-resize an int (H, W) label map to ``size`` = (H', W') with PIL; returns int64 (H', W')."""
    if labels.shape == tuple(size):
        return labels
    if labels.size and (labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max):
        raise DataError(path, "label values do not fit in 32 bits and cannot be resized")
    image = Image.fromarray(labels.astype(np.int32))
    resized = image.resize((size[1], size[0]), resample=Image.NEAREST)
    return np.asarray(resized).astype(np.int64)


def _agnostic_classes(is_object: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Class-agnostic class map: 2 = object, 1 = background, 0 = void (where not ``labelled``)."""
    return np.where(labelled, np.where(is_object, AGNOSTIC_OBJECT, AGNOSTIC_BACKGROUND), 0).astype(np.int64)


def _json_value(value: Any) -> Any:
    """NaN / inf -> None, numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _prediction_path(folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    if not path.is_file():
        raise DataError(path, f"missing prediction for test frame '{name}'")
    return path


def _test_frames(scene_root: Path, split: str, every: int) -> list[str]:
    """Every ``every``-th frame name of ``split`` in ``splits.json``, in frame order; DataError when
    the split is missing or empty."""
    splits_path = scene_root / layout.SPLITS_FILE
    splits = layout.read_splits(splits_path)
    if split not in splits:
        raise DataError(splits_path, f"no '{split}' split (has: {', '.join(sorted(splits))})")
    frames = layout.frame_sort_key(splits[split])[::every]
    if not frames:
        raise DataError(splits_path, f"split '{split}' is empty")
    return frames


@dataclass(frozen=True)
class _ScoredClasses:
    """The scene's thing classes and class count (``gt_things``, ``gt_count``) and the classes
    scored: the scene's, or object / background when ``agnostic``."""

    gt_things: set[int]
    gt_count: int
    things: set[int]
    stuff: set[int]
    num_classes: int
    agnostic: bool


def _scored_classes(scene_root: Path, class_agnostic: bool | None) -> _ScoredClasses:
    """The classes to score by; ``class_agnostic`` None = as the scene's segmentation data says.
    The GT's classes are the scene's, or its ``rs_*`` class keys where it has them (a class-agnostic
    scene whose ground truth keeps its classes)."""
    path = scene_root / layout.SEGMENTATION_FILE
    data = layout.read_segmentation_data(path)
    classes = segmentation_classes(data, path)
    gt = segmentation_classes(ground_truth_class_data(data), path)
    gt_things = set(gt.thing_classes)
    agnostic = classes.class_agnostic if class_agnostic is None else class_agnostic
    if agnostic:  # every GT thing instance is one "object"; predictions: instance id > 0 = object
        return _ScoredClasses(gt_things, gt.num_classes, {AGNOSTIC_OBJECT}, {AGNOSTIC_BACKGROUND}, 3, agnostic)
    return _ScoredClasses(gt_things, gt.num_classes, gt_things, set(gt.stuff_classes), gt.num_classes, agnostic)


def _prediction_dirs(pred_root: Path, use_machine_labels: bool) -> tuple[Path, Path]:
    """The folders of the predicted semantic and instance maps."""
    if use_machine_labels:
        return pred_root / "m2f_semantics", pred_root / "m2f_instance"
    ins_dir = pred_root / "pred_instance"
    if not ins_dir.is_dir() and (pred_root / "pred_surrogateid").is_dir():
        ins_dir = pred_root / "pred_surrogateid"
    return pred_root / "pred_semantics", ins_dir


@dataclass(frozen=True)
class _FrameReader:
    """Reads the GT and predicted label maps of a test frame at the size the protocol scores."""

    scene_root: Path
    sem_dir: Path
    ins_dir: Path
    protocol: str
    classes: _ScoredClasses

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Predicted semantics and instances, GT semantics and instances of frame ``name``, int
        (H, W) each at the scored size (object / background classes when class-agnostic)."""
        pred_sem_path = _prediction_path(self.sem_dir, name)
        pred_ins_path = _prediction_path(self.ins_dir, name)
        gt_sem_path = self.scene_root / layout.FOLDERS["rs_semantics"] / f"{name}.png"
        gt_ins_path = self.scene_root / layout.FOLDERS["rs_instance"] / f"{name}.png"
        gt_sem = layout.read_label(gt_sem_path)
        gt_ins = layout.read_label(gt_ins_path)
        if gt_ins.shape != gt_sem.shape:
            raise DataError(gt_ins_path, f"size {gt_ins.shape} differs from the GT semantics {gt_sem.shape}")
        gt_count = self.classes.gt_count
        outside = gt_sem[(gt_sem < 0) | (gt_sem >= gt_count)]
        if outside.size:
            raise DataError(gt_sem_path, f"semantic class {int(outside[0])} outside [0, {gt_count}) declared by {layout.SEGMENTATION_FILE}")
        size = PANOPTIC_LIFTING_SIZE if self.protocol == "panoptic-lifting" else gt_sem.shape
        gt_sem = _resize_labels(gt_sem, size, gt_sem_path)
        gt_ins = _resize_labels(gt_ins, size, gt_ins_path)
        pred_sem = _resize_labels(layout.read_label(pred_sem_path), size, pred_sem_path)
        pred_ins = _resize_labels(layout.read_label(pred_ins_path), size, pred_ins_path)
        if self.classes.agnostic:
            gt_sem = _agnostic_classes(np.isin(gt_sem, list(self.classes.gt_things)) & (gt_ins > 0), gt_sem > 0)
            pred_sem = _agnostic_classes(pred_ins > 0, np.ones(pred_ins.shape, dtype=bool))
        return pred_sem, pred_ins, gt_sem, gt_ins


@dataclass
class _Totals:
    """What the test frames add up to: the PQ^scene accumulator, the confusion matrix (C, C), the
    edge Dice of every GT segment and the scored [H, W] of the first frame."""

    panoptic: PanopticAccumulator
    confusion: np.ndarray
    edge_scores: list[float]
    resolution: list[int] | None = None


def _score_frames(reader: _FrameReader, frames: list[str]) -> _Totals:
    """Accumulate every frame's scores; GT-void pixels are left out of PQ and the confusion matrix."""
    classes = reader.classes
    totals = _Totals(PanopticAccumulator(), np.zeros((classes.num_classes, classes.num_classes), dtype=np.int64), [])
    for name in frames:
        pred_sem, pred_ins, gt_sem, gt_ins = reader.read(name)
        if totals.resolution is None:
            totals.resolution = [int(gt_sem.shape[0]), int(gt_sem.shape[1])]
        valid = gt_sem != 0
        totals.panoptic.update(pred_sem[valid], pred_ins[valid], gt_sem[valid], gt_ins[valid])
        totals.confusion += confusion_matrix(pred_sem[valid], gt_sem[valid], classes.num_classes)
        totals.edge_scores.extend(frame_edge_dice(pred_sem, pred_ins, gt_sem, gt_ins, things=classes.things))
    return totals


def _per_class(pq_result: PanopticResult, class_iou: np.ndarray, things: set[int], num_classes: int) -> dict[int, dict[str, Any]]:
    """tp/fp/fn/iou_sum/pq/sq/rq/iou/thing of every class kept by PQ or with an IoU (C,)."""
    per_class: dict[int, dict[str, Any]] = {}
    scored = set(pq_result.per_class) | {c for c in range(num_classes) if not math.isnan(class_iou[c])}
    for c in sorted(scored):
        entry = {key: None for key in ("tp", "fp", "fn", "iou_sum", "pq", "sq", "rq")}
        entry.update({k: v for k, v in pq_result.per_class.get(c, {}).items() if k != "thing"})
        entry["iou"] = float(class_iou[c]) if 0 <= c < num_classes else None
        entry["thing"] = c in things
        per_class[c] = entry
    return per_class


def _scores(totals: _Totals, classes: _ScoredClasses) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """PQ/SQ/RQ (all, things, stuff), mIoU and edge accuracy, and the per-class scores."""
    pq_result = totals.panoptic.compute(classes.things, classes.stuff)
    miou, class_iou = mean_iou(totals.confusion)
    headline = {
        "pq": pq_result.pq,
        "sq": pq_result.sq,
        "rq": pq_result.rq,
        "pq_things": pq_result.pq_things,
        "pq_stuff": pq_result.pq_stuff,
        "sq_things": pq_result.sq_things,
        "sq_stuff": pq_result.sq_stuff,
        "rq_things": pq_result.rq_things,
        "rq_stuff": pq_result.rq_stuff,
        "miou": miou,
        "ea": float(np.mean(totals.edge_scores)) if totals.edge_scores else math.nan,
    }
    return headline, _per_class(pq_result, class_iou, classes.things, classes.num_classes)


HEADLINE = ("pq", "sq", "rq", "pq_things", "pq_stuff", "sq_things", "sq_stuff", "rq_things", "rq_stuff", "miou", "ea")


def has_ground_truth(scene_root: Path) -> bool:
    """Whether the scene has ground-truth label maps (``rs_semantics/`` and ``rs_instance/``)."""
    return all((Path(scene_root) / layout.FOLDERS[folder]).is_dir() for folder in ("rs_semantics", "rs_instance"))


def _without_ground_truth(scene_root: Path, pred_root: Path, frames: list[str], *, split: str, protocol: str) -> dict[str, Any]:
    """The scores of a scene without ground-truth labels (a prepared capture): the panoptic scores
    are None; ``psnr`` and the depth scores of :func:`image_scores`; a ``note`` saying so."""
    scores = image_scores(scene_root, pred_root, frames)
    colour = "psnr of the rendered views" if "psnr" in scores else "no rendered colours (rgb/) to score"
    note = (f"{scene_root}: no ground truth (rs_semantics/, rs_instance/): panoptic scores (pq, miou, ...) not computed; "
            f"{colour}; {depth_note(scene_root, scores)}")
    return {**dict.fromkeys(HEADLINE), "frames": len(frames), "protocol": protocol, "split": split, "ground_truth": False, **scores, "note": note}


def evaluate_predictions(
    scene_root: Path,
    pred_root: Path,
    protocol: str = "native",
    use_machine_labels: bool = False,
    *,
    split: str = "test",
    class_agnostic: bool | None = None,
    every: int = 1,
) -> dict:
    """Scene-level PQ/SQ/RQ (+ things/stuff), mIoU, edge accuracy and optional PSNR / depth AbsRel.

    Args:
        scene_root: the scene folder (GT, splits, segmentation data, colour, depth).
        pred_root: the prediction folder (or a scene folder with ``use_machine_labels``).
        protocol: ``"native"`` or ``"panoptic-lifting"`` (512x512 nearest resize of everything).
        use_machine_labels: score ``m2f_semantics`` / ``m2f_instance`` of ``pred_root`` instead.
        split: the ``splits.json`` list to score.
        class_agnostic: score instances without classes: GT pixels of thing instances become class
            2 ("object"), other labelled GT pixels class 1 ("background"); predicted pixels with an
            instance id > 0 become "object", all others "background". None = when the
            scene's ``segmentation_data.pkl`` says ``class_agnostic`` (a scene whose masks have no
            classes). ``pq_things`` is then the class-agnostic PQ of the things.
        every: score every k-th frame of the split only.

    A scene without ground-truth label maps (a prepared capture) is scored on its views alone:
    ``pq`` ... ``ea`` are None, ``ground_truth`` false, ``psnr`` and the depth scores
    (:mod:`.views`: ``depth_abs_rel`` against the scene's depth, else ``depth_consistency``
    between neighbouring views) where their files exist, and a ``note`` says what was scored.

    Returns:
        JSON-serialisable dict: ``pq, sq, rq, pq_things, pq_stuff, sq_things, sq_stuff, rq_things,
        rq_stuff, miou, ea, frames, protocol, resolution`` ([H, W] scored, of the first frame),
        ``per_class`` (int class id -> tp/fp/fn/iou_sum/pq/sq/rq/iou/thing), ``num_classes``,
        ``things``, ``stuff``, ``split``, ``use_machine_labels`` and, when computed, ``psnr`` and
        ``depth_abs_rel``. NaN and inf are written as None.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}', expected one of {', '.join(PROTOCOLS)}")
    scene_root, pred_root = Path(scene_root), Path(pred_root)
    if not pred_root.is_dir():
        raise DataError(pred_root, "prediction folder not found")
    frames = _test_frames(scene_root, split, every)
    if not use_machine_labels and not has_ground_truth(scene_root):
        return _json_value(_without_ground_truth(scene_root, pred_root, frames, split=split, protocol=protocol))
    classes = _scored_classes(scene_root, class_agnostic)
    sem_dir, ins_dir = _prediction_dirs(pred_root, use_machine_labels)
    totals = _score_frames(_FrameReader(scene_root, sem_dir, ins_dir, protocol, classes), frames)
    headline, per_class = _scores(totals, classes)
    result: dict[str, Any] = {
        **headline,
        "frames": len(frames),
        "protocol": protocol,
        "resolution": totals.resolution,
        "split": split,
        "use_machine_labels": bool(use_machine_labels),
        "num_classes": classes.num_classes,
        "class_agnostic": bool(classes.agnostic),
        "things": sorted(classes.things),
        "stuff": sorted(classes.stuff),
        "per_class": per_class,
    }
    if not use_machine_labels:
        result.update(image_scores(scene_root, pred_root, frames))
    return _json_value(result)
