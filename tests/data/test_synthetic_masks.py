"""The class-agnostic kinds of synthetic machine labels (``generate_scene(masks="sam" | "fragments")``),
on the ``tiny`` preset (a second or two per scene)."""

from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from clusteringsdf.cli import main
from clusteringsdf.data import layout, load_scene
from clusteringsdf.data.classes import NUM_CLASSES, THING_CLASSES
from clusteringsdf.data.synthetic import MASK_KINDS, SAM_LEVELS, SamParams, generate_scene
from clusteringsdf.data.synthetic.digest import content_digest
from clusteringsdf.evaluation import evaluate_predictions

AGNOSTIC = ("sam", "fragments")
# the default tiny scene (seed 0, medium noise) as written before the kinds of masks existed
TINY_M2F_DIGEST = "296f04ccc1519ee5ea3fe22f90083dba016fa2dfb53883769ac8be1d20363e48"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("masks")
    for masks in AGNOSTIC:
        generate_scene(root / masks, preset="tiny", seed=0, masks=masks)
    return {masks: root / masks for masks in AGNOSTIC}


def _frames(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "color").glob("*.png"))


def _maps(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(layout.read_label(root / folder / f"{name}.png") for folder in ("m2f_semantics", "m2f_instance", "m2f_segments"))


def test_default_masks_are_unchanged(tiny_scene_source, tmp_path):
    assert MASK_KINDS[0] == "m2f"
    generate_scene(tmp_path / "explicit", preset="tiny", seed=0, masks="m2f")
    assert content_digest(tmp_path / "explicit") == content_digest(tiny_scene_source) == TINY_M2F_DIGEST


@pytest.mark.parametrize("masks", AGNOSTIC)
def test_class_agnostic_segmentation_data_and_labels(scenes, masks):
    root = scenes[masks]
    data = pickle.loads((root / layout.SEGMENTATION_FILE).read_bytes())
    assert data["class_agnostic"] is True and data["fg_classes"] == [2] and data["bg_classes"] == [1] and data["num_semantic_classes"] == 3
    assert data["rs_fg_classes"] == list(THING_CLASSES) and data["rs_num_semantic_classes"] == NUM_CLASSES
    assert load_scene(root).classes.class_agnostic
    seen: set[int] = set()
    for name in _frames(root):
        semantics, instance, segments = _maps(root, name)
        assert set(np.unique(semantics)) <= {0, 1, 2}
        assert np.array_equal(semantics == 2, instance > 0)
        assert np.array_equal(semantics == 0, segments == 0)  # unlabelled = no mask
        ids = set(np.unique(instance[instance > 0]).tolist())
        assert not ids & seen  # ids are never reused across frames
        seen |= ids
        probability, confidence = layout.read_probabilities(root / "m2f_probabilities" / f"{name}.npz")
        assert probability is None and confidence.shape == instance.shape
        assert np.all(confidence[semantics == 0] == 0)
        low = 0.86 if masks == "sam" else 1.0  # SAM: the predicted quality of the pixel's mask
        assert np.all(confidence[semantics > 0] >= low - 1e-3)
        if masks == "fragments":
            assert np.all(semantics > 0)  # superpixels cover every pixel
    assert len(seen) > 2 * len(_frames(root))


@pytest.mark.parametrize("masks", AGNOSTIC)
def test_ground_truth_and_images_are_those_of_the_default_scene(scenes, tiny_scene_source, masks):
    root = scenes[masks]
    for folder in ("rs_semantics", "rs_instance", "color", "depth", "normal", "pose"):
        for path in sorted((tiny_scene_source / folder).iterdir()):
            assert (root / folder / path.name).read_bytes() == path.read_bytes(), f"{folder}/{path.name}"
    assert (root / "gt_mesh.ply").read_bytes() == (tiny_scene_source / "gt_mesh.ply").read_bytes()


@pytest.mark.parametrize("masks", AGNOSTIC)
def test_output_is_deterministic(scenes, tmp_path, masks):
    generate_scene(tmp_path / "again", preset="tiny", seed=0, masks=masks)
    assert content_digest(tmp_path / "again") == content_digest(scenes[masks])
    generate_scene(tmp_path / "other", preset="tiny", seed=1, masks=masks)
    assert (tmp_path / "other" / "m2f_segments" / "0000.png").read_bytes() != (scenes[masks] / "m2f_segments" / "0000.png").read_bytes()


def test_frames_rendered_in_worker_processes_get_the_same_masks(scenes, tmp_path):
    generate_scene(tmp_path / "parallel", preset="tiny", seed=0, masks="sam", workers=2)
    assert content_digest(tmp_path / "parallel") == content_digest(scenes["sam"])


def test_fragments_per_frame(scenes):
    root = scenes["fragments"]
    counts = [len(np.unique(_maps(root, name)[2])) for name in _frames(root)]
    assert all(30 <= count <= 60 for count in counts), counts
    # both objects and background fragments, and the largest object in view is cut into several fragments
    gts = {name: layout.read_label(root / "rs_instance" / f"{name}.png") for name in _frames(root)}
    name = max(gts, key=lambda n: np.count_nonzero(gts[n]))
    semantics, instance, _ = _maps(root, name)
    assert (semantics == 1).any() and (semantics == 2).any()
    largest = np.bincount(gts[name][gts[name] > 0]).argmax()
    assert len(np.unique(instance[gts[name] == largest])) > 1


def _masks_covering(segments: np.ndarray, gt: np.ndarray, instance_id: int, share: float) -> int:
    """How many masks cover at least ``share`` of the pixels of GT instance ``instance_id``."""
    ids, counts = np.unique(segments[gt == instance_id], return_counts=True)
    return int(np.sum((ids > 0) & (counts >= share * counts.sum())))


def test_sam_masks_have_several_granularities(scenes):
    root = scenes["sam"]
    whole: set[int] = set()
    split: set[int] = set()
    for name in _frames(root):
        gt = layout.read_label(root / "rs_instance" / f"{name}.png")
        segments = _maps(root, name)[2]
        for instance_id in np.unique(gt[gt > 0]).tolist():
            if np.count_nonzero(gt == instance_id) < 40:
                continue
            if _masks_covering(segments, gt, instance_id, 0.9) == 1:
                whole.add(instance_id)
            if _masks_covering(segments, gt, instance_id, 0.15) >= 2:
                split.add(instance_id)
    assert whole & split  # an object whole in one frame and in parts in another


def test_sam_parameter_table_matches_the_levels():
    from clusteringsdf.data.synthetic import sam_masks

    rows = {}
    for line in sam_masks.__doc__.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in {f.name for f in fields(SamParams)}:
            rows[parts[0]] = [float(x) for x in parts[1:]]
    assert set(rows) == {f.name for f in fields(SamParams)}
    for name, values in rows.items():
        assert values == [getattr(SAM_LEVELS[level], name) for level in ("low", "medium", "high")], name


@pytest.mark.parametrize("masks", AGNOSTIC)
def test_scored_class_agnostic_against_the_classed_ground_truth(scenes, tmp_path, masks):
    root = scenes[masks]
    raw = evaluate_predictions(root, root, use_machine_labels=True)
    assert raw["class_agnostic"] and raw["things"] == [2] and raw["pq_things"] < 1.0
    assert raw["pq_things"] > (0.3 if masks == "sam" else -1.0)  # fragments rarely match a whole object
    perfect = tmp_path / "perfect"
    for name in layout.read_splits(root / layout.SPLITS_FILE)["test"]:
        ids = layout.read_label(root / "rs_instance" / f"{name}.png")
        layout.write_label(perfect / "pred_semantics" / f"{name}.png", np.where(ids > 0, 2, 1))
        layout.write_label(perfect / "pred_instance" / f"{name}.png", ids)
    assert evaluate_predictions(root, perfect)["pq_things"] == pytest.approx(1.0)


def test_loaded_ground_truth_follows_the_scenes_contract(scenes):
    root = scenes["sam"]
    scene = load_scene(root)
    for f, name in enumerate(scene.frame_names):
        semantics = layout.read_label(root / "rs_semantics" / f"{name}.png")
        instance = layout.read_label(root / "rs_instance" / f"{name}.png")
        thing = np.isin(semantics, THING_CLASSES) & (instance > 0)
        expected = np.where(thing, 2, np.where(semantics > 0, 1, 0))
        assert np.array_equal(scene.gt_semantics[f], expected)  # what training on GT labels reads
        assert np.array_equal(scene.gt_instance[f], np.where(thing, instance, 0))


def test_info_and_eval_commands_read_the_scenes(scenes, capsys):
    for root in scenes.values():
        assert main(["info", str(root)]) == 0
        assert "machine" in capsys.readouterr().out
        assert main(["eval", "--scene", str(root), "--pred", str(root), "--use-machine-labels"]) == 0
        assert '"class_agnostic": true' in capsys.readouterr().out


def test_synth_command_writes_the_masks(scenes, tmp_path, capsys):
    out = tmp_path / "fragments"
    assert main(["synth", str(out), "--preset", "tiny", "--masks", "fragments", "--quiet"]) == 0
    assert "class-agnostic fragments masks" in capsys.readouterr().out
    assert content_digest(out) == content_digest(scenes["fragments"])


def test_unknown_kind_of_masks(tmp_path):
    with pytest.raises(ValueError, match="kind of masks"):
        generate_scene(tmp_path / "scene", preset="tiny", masks="m2f_sam")
