"""``evaluate_predictions`` on a tiny scene written with the layout writers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clusteringsdf.data.classes import STUFF_CLASSES, THING_CLASSES
from clusteringsdf.data.layout import write_color, write_depth, write_label, write_segmentation_data, write_splits
from clusteringsdf.errors import DataError
from clusteringsdf.evaluation import evaluate_predictions

H, W = 12, 16
WALL, FLOOR, CHAIR = 1, 2, 5
FRAMES = ["0", "1", "2", "3"]
TEST = ["1", "3"]


def gt_frame(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) GT semantics/instances: wall, floor rows 8-11, a 4x5 chair (id 3), a void corner."""
    sem = np.full((H, W), WALL, dtype=np.int64)
    sem[8:, :] = FLOOR
    sem[3:7, 4 + k : 9 + k] = CHAIR
    sem[0:2, 0:3] = 0
    return sem, np.where(sem == CHAIR, 3, 0)


def color_frame(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(20, 230, size=(H, W, 3)).astype(np.uint8)


def depth_frame() -> np.ndarray:
    depth = np.full((H, W), 2.0)
    depth[0, :] = 0.0  # missing GT depth
    return depth


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    root = tmp_path / "scene"
    for k, name in enumerate(FRAMES):
        sem, ins = gt_frame(k)
        write_label(root / "rs_semantics" / f"{name}.png", sem)
        write_label(root / "rs_instance" / f"{name}.png", ins)
        write_color(root / "color" / f"{name}.png", color_frame(k))
        write_depth(root / "depth" / f"{name}.png", depth_frame())
    write_splits(root / "splits.json", {"train": ["0", "2"], "test": TEST})
    write_segmentation_data(
        root / "segmentation_data.pkl",
        {"num_semantic_classes": 22, "fg_classes": list(THING_CLASSES), "bg_classes": list(STUFF_CLASSES)},
    )
    return root


def write_prediction(pred: Path, frames=TEST, sem_folder="pred_semantics", ins_folder="pred_instance", edit=None):
    """GT copied as prediction (instance ids renamed), optionally modified by ``edit(sem, ins, k)``."""
    for name in frames:
        k = FRAMES.index(name)
        sem, ins = gt_frame(k)
        ins = np.where(ins > 0, 40, 0)
        if edit is not None:
            sem, ins = edit(sem, ins, k)
        write_label(pred / sem_folder / f"{name}.png", sem)
        write_label(pred / ins_folder / f"{name}.png", ins)


def assert_perfect(result: dict) -> None:
    for key in ("pq", "sq", "rq", "miou", "ea", "pq_things", "pq_stuff"):
        assert result[key] == pytest.approx(1.0), key


def test_gt_as_prediction_scores_one(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred)
    result = evaluate_predictions(scene, pred)
    assert_perfect(result)
    assert result["frames"] == 2 and result["protocol"] == "native" and result["resolution"] == [H, W]
    assert set(result["per_class"]) == {WALL, FLOOR, CHAIR}
    assert result["per_class"][CHAIR]["thing"] is True and result["per_class"][WALL]["iou"] == 1.0
    assert "psnr" not in result and "depth_abs_rel" not in result
    json.dumps(result, allow_nan=False)


def test_prediction_on_gt_void_is_ignored(scene, tmp_path):
    def on_void(sem, ins, k):
        void = sem == 0
        return np.where(void, CHAIR, sem), np.where(void, 99, ins)

    pred = tmp_path / "pred"
    write_prediction(pred, edit=on_void)
    assert_perfect(evaluate_predictions(scene, pred))


def test_missing_prediction_frame_raises(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred)
    missing = pred / "pred_instance" / "3.png"
    missing.unlink()
    with pytest.raises(DataError) as info:
        evaluate_predictions(scene, pred)
    assert info.value.path == missing
    assert "missing prediction for test frame '3'" in str(info.value)


def test_every_kth_frame_is_scored_when_asked(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred)
    (pred / "pred_instance" / "3.png").unlink()  # the second test frame: not scored with every=2
    result = evaluate_predictions(scene, pred, every=2)
    assert_perfect(result)
    assert result["frames"] == 1


def test_surrogateid_folder_is_accepted(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred, ins_folder="pred_surrogateid")
    assert_perfect(evaluate_predictions(scene, pred))


def test_panoptic_lifting_protocol_resizes_to_512(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred)
    result = evaluate_predictions(scene, pred, protocol="panoptic-lifting")
    assert result["resolution"] == [512, 512] and result["protocol"] == "panoptic-lifting"
    assert_perfect(result)
    with pytest.raises(ValueError):
        evaluate_predictions(scene, pred, protocol="other")


def test_prediction_of_other_size_is_resized_to_gt(scene, tmp_path):
    def upsample(sem, ins, k):
        return np.kron(sem, np.ones((2, 2), int)), np.kron(ins, np.ones((2, 2), int))

    pred = tmp_path / "pred"
    write_prediction(pred, edit=upsample)
    result = evaluate_predictions(scene, pred)
    assert result["resolution"] == [H, W]
    assert_perfect(result)


def test_cross_view_id_change_lowers_scene_pq(scene, tmp_path):
    # Chair (20 px per frame) predicted with id 40 in frame 1 and id 41 in frame 3: two predicted
    # segments of 20 px against one GT segment of 40 px -> IoU 0.5 each -> no match: chair PQ 0.
    # wall and floor perfect -> PQ = 2/3; semantics are right -> mIoU 1.
    pred = tmp_path / "pred"
    write_prediction(pred, edit=lambda sem, ins, k: (sem, np.where(ins > 0, 40 + k // 2, 0)))
    result = evaluate_predictions(scene, pred)
    assert result["pq"] == pytest.approx(2 / 3) and result["pq_things"] == 0.0 and result["miou"] == 1.0
    assert result["per_class"][CHAIR]["fp"] == 2 and result["per_class"][CHAIR]["fn"] == 1
    assert result["ea"] == pytest.approx(1.0)  # per-frame edges are unaffected by id changes


def test_machine_label_mode_reads_m2f_folders(scene):
    # m2f instance ids come from a global counter (different in every frame): same split as above.
    write_prediction(
        scene, frames=FRAMES, sem_folder="m2f_semantics", ins_folder="m2f_instance",
        edit=lambda sem, ins, k: (sem, np.where(ins > 0, 10 + k, 0)),
    )
    (scene / "rgb").mkdir()  # even with extras available, they are not computed in this mode
    for name in TEST:
        write_color(scene / "rgb" / f"{name}.png", color_frame(FRAMES.index(name)))
    result = evaluate_predictions(scene, scene, use_machine_labels=True)
    assert result["pq"] == pytest.approx(2 / 3) and result["miou"] == 1.0
    assert result["use_machine_labels"] is True
    assert "psnr" not in result and "depth_abs_rel" not in result


def test_psnr_and_depth_extras(scene, tmp_path):
    pred = tmp_path / "pred"
    write_prediction(pred)
    for name in TEST:
        k = FRAMES.index(name)
        write_color(pred / "rgb" / f"{name}.png", color_frame(k) + 10)
        write_depth(pred / "depth" / f"{name}.png", np.full((H, W), 2.2))
    result = evaluate_predictions(scene, pred)
    # every channel off by 10/255 -> PSNR = 20 log10(25.5); depth 2.2 vs 2.0 -> AbsRel 0.1 (row 0 ignored)
    assert result["psnr"] == pytest.approx(20 * math.log10(25.5))
    assert result["depth_abs_rel"] == pytest.approx(0.1)
    json.dumps(result, allow_nan=False)
    # identical RGB gives an infinite PSNR, written as None
    write_color(pred / "rgb" / "1.png", color_frame(1))
    write_color(pred / "rgb" / "3.png", color_frame(3))
    assert evaluate_predictions(scene, pred)["psnr"] is None
    # an extra missing for one test frame is not computed
    (pred / "depth" / "3.png").unlink()
    assert "depth_abs_rel" not in evaluate_predictions(scene, pred)


def test_gt_class_outside_declared_range_raises(scene, tmp_path):
    bad = scene / "rs_semantics" / "1.png"
    sem, _ = gt_frame(1)
    sem[0, 0] = 30
    write_label(bad, sem)
    pred = tmp_path / "pred"
    write_prediction(pred)
    with pytest.raises(DataError) as info:
        evaluate_predictions(scene, pred)
    assert info.value.path == bad


def test_val_split_stands_in_for_test(scene, tmp_path):
    write_splits(scene / "splits.json", {"train": ["0", "2"], "val": ["3"]})
    pred = tmp_path / "pred"
    write_prediction(pred, frames=["3"])
    result = evaluate_predictions(scene, pred)
    assert result["frames"] == 1
    assert_perfect(result)
