"""`segmentation_data.pkl` written by other tools, and class-agnostic scoring of scenes without classes."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from clusteringsdf.data import layout
from clusteringsdf.data.scene import load_scene, read_segmentation_classes
from clusteringsdf.errors import DataError
from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.prepare.segmenters import class_agnostic_data


def _write(path: Path, data) -> Path:
    path.write_bytes(pickle.dumps(data))
    return path


def test_class_names_as_list_or_dict_with_numpy_ints(tmp_path):
    listed = read_segmentation_classes(_write(tmp_path / "a.pkl", {
        "fg_classes": np.array([3, 1]), "bg_classes": (0, np.int64(2)), "class_names": ["void", "chair", "wall", "table"],
        "instance_to_semantic": {1: 3}, "something_else": "ignored",
    }))
    assert listed.thing_classes == (1, 3) and listed.stuff_classes == (0, 2) and listed.num_classes == 4
    assert listed.names == {0: "void", 1: "chair", 2: "wall", 3: "table"} and not listed.class_agnostic
    mapped = read_segmentation_classes(_write(tmp_path / "b.pkl", {
        "fg_classes": [np.int32(5)], "bg_classes": [np.uint8(1)], "num_semantic_classes": np.int64(7), "class_names": {np.int64(5): "bed", "1": "wall"},
    }))
    assert mapped.num_classes == 7 and mapped.names == {5: "bed", 1: "wall"}
    agnostic = read_segmentation_classes(_write(tmp_path / "c.pkl", class_agnostic_data()))
    assert agnostic.class_agnostic and agnostic.thing_classes == (2,) and agnostic.stuff_classes == (1,) and agnostic.num_classes == 3


@pytest.mark.parametrize("data, key", [
    ({"fg_classes": "1,2", "bg_classes": [0]}, "'fg_classes'"),
    ({"fg_classes": [1], "bg_classes": [0.5]}, "'bg_classes'"),
    ({"fg_classes": [1], "bg_classes": [0], "class_names": 3}, "'class_names'"),
    ({"fg_classes": [1], "bg_classes": [0], "class_names": {"wall": 1}}, "'class_names'"),
    ({"fg_classes": [4], "bg_classes": [0], "num_semantic_classes": 3}, "'num_semantic_classes'"),
    ({"fg_classes": [1], "bg_classes": [0], "num_semantic_classes": "many"}, "'num_semantic_classes'"),
    ({"bg_classes": [0]}, "'fg_classes'"),
])
def test_errors_name_the_key(tmp_path, data, key):
    with pytest.raises(DataError, match=key):
        read_segmentation_classes(_write(tmp_path / "bad.pkl", data))


def _predictions(scene: Path, out: Path, semantics: str, instance: str) -> Path:
    splits = layout.read_splits(scene / layout.SPLITS_FILE)
    for name in splits["test"]:
        layout.write_label(out / "pred_semantics" / f"{name}.png", layout.read_label(scene / semantics / f"{name}.png"))
        layout.write_label(out / "pred_instance" / f"{name}.png", layout.read_label(scene / instance / f"{name}.png"))
    return out


def test_class_agnostic_scoring(tiny_scene, tmp_path):
    perfect = _predictions(tiny_scene, tmp_path / "perfect", "rs_semantics", "rs_instance")
    classed = evaluate_predictions(tiny_scene, perfect)
    agnostic = evaluate_predictions(tiny_scene, perfect, class_agnostic=True)
    assert not classed["class_agnostic"] and agnostic["class_agnostic"]
    assert agnostic["pq_things"] == pytest.approx(1.0) and agnostic["things"] == [2] and agnostic["stuff"] == [1]
    # instance ids only (classes thrown away) still score perfectly without classes
    instance_only = tmp_path / "instance_only"
    for name in layout.read_splits(tiny_scene / layout.SPLITS_FILE)["test"]:
        ids = layout.read_label(tiny_scene / "rs_instance" / f"{name}.png")
        layout.write_label(instance_only / "pred_semantics" / f"{name}.png", np.zeros_like(ids))
        layout.write_label(instance_only / "pred_instance" / f"{name}.png", ids * 7 + (ids > 0))
    assert evaluate_predictions(tiny_scene, instance_only, class_agnostic=True)["pq_things"] == pytest.approx(1.0)
    # machine labels merge and split objects: below 1
    assert evaluate_predictions(tiny_scene, tiny_scene, use_machine_labels=True, class_agnostic=True)["pq_things"] < 1.0


def test_scene_without_classes_is_scored_class_agnostic_by_default(tiny_scene, tmp_path):
    agnostic_scene = tmp_path / "agnostic"
    shutil.copytree(tiny_scene, agnostic_scene)
    for split_name in ("rs", "m2f"):
        for path in (agnostic_scene / f"{split_name}_instance").glob("*.png"):
            ids = layout.read_label(path)
            layout.write_label(agnostic_scene / f"{split_name}_semantics" / path.name, np.where(ids > 0, 2, 1))
    layout.write_segmentation_data(agnostic_scene / layout.SEGMENTATION_FILE, class_agnostic_data())
    assert load_scene(agnostic_scene).classes.class_agnostic
    perfect = _predictions(agnostic_scene, tmp_path / "perfect", "rs_semantics", "rs_instance")
    result = evaluate_predictions(agnostic_scene, perfect)
    assert result["class_agnostic"] and result["pq_things"] == pytest.approx(1.0)
