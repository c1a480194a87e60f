"""Scores of rendered views that need no labels (PSNR, depth against the scene's depth or between
views), and ``eval`` on a scene without ground-truth labels: scored on its views, not an error."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.evaluation.scoring import HEADLINE
from clusteringsdf.evaluation.views import depth_consistency

NEIGHBOURS = ["0000", "0001", "0002"]  # consecutive frames of the tiny scene's orbit overlap; its test frames (0000, 0004, 0008) do not


def without_labels(scene: Path, *, depth: bool = True, test: list[str] | None = None) -> Path:
    """The tiny scene as a prepared capture: no rs_* maps (and no depth, or other test frames)."""
    for folder in ("rs_semantics", "rs_instance", *(() if depth else ("depth",))):
        shutil.rmtree(scene / folder)
    if test is not None:
        names = sorted(p.stem for p in (scene / "color").iterdir())
        layout.write_splits(scene / "splits.json", {"train": [n for n in names if n not in test], "test": test})
    return scene


def scene_depth(scene: Path, name: str) -> np.ndarray:
    return layout.read_depth(scene / "depth" / f"{name}.png")


def write_renders(scene: Path, pred: Path, frames: list[str], depths: dict[str, np.ndarray]) -> Path:
    """Renders whose colours are off by 10 in every channel, with the given depth maps, and label maps."""
    for name in frames:
        rgb = layout.read_color(layout.find_frame_file(scene / "color", name, layout.COLOR_SUFFIXES)).astype(np.int64)
        layout.write_color(pred / "rgb" / f"{name}.png", np.where(rgb < 128, rgb + 10, rgb - 10).astype(np.uint8))
        layout.write_depth(pred / "depth" / f"{name}.png", depths[name])
        zeros = np.zeros(rgb.shape[:2], dtype=np.int64)
        layout.write_label(pred / "pred_semantics" / f"{name}.png", zeros)
        layout.write_label(pred / "pred_instance" / f"{name}.png", zeros)
    return pred


def test_a_scene_without_ground_truth_is_scored_on_psnr_and_its_depth(tiny_scene, tmp_path):
    frames = ["0000", "0004", "0008"]
    pred = write_renders(tiny_scene, tmp_path / "pred", frames, {n: 1.1 * scene_depth(tiny_scene, n) for n in frames})
    result = evaluate_predictions(without_labels(tiny_scene), pred)
    assert result["psnr"] == pytest.approx(20 * math.log10(25.5))  # every channel off by 10/255
    assert result["depth_abs_rel"] == pytest.approx(0.1, abs=2e-3)  # 10% too deep (mm rounding)
    assert all(result[key] is None for key in HEADLINE) and result["ground_truth"] is False and result["frames"] == 3
    assert "no ground truth" in result["note"] and "depth_abs_rel: rendered depth against the scene's depth" in result["note"]
    assert "depth_consistency" not in result
    json.dumps(result, allow_nan=False)


def test_without_depth_the_rendered_depths_of_neighbouring_views_are_compared(tiny_scene, tmp_path):
    true = {n: scene_depth(tiny_scene, n) for n in NEIGHBOURS}  # a render with the right geometry
    scene = without_labels(tiny_scene, depth=False, test=NEIGHBOURS)
    result = evaluate_predictions(scene, write_renders(scene, tmp_path / "right", NEIGHBOURS, true))
    assert result["depth_consistency"] > 0.95 and result["depth_consistency_pixels"] > 2000
    assert "depth_abs_rel" not in result and "depth_consistency: share of pixels" in result["note"]
    flat = {n: np.full_like(d, np.median(d)) for n, d in true.items()}  # flat depth: the views disagree
    assert evaluate_predictions(scene, write_renders(scene, tmp_path / "flat", NEIGHBOURS, flat))["depth_consistency"] < 0.5


def test_depth_consistency_of_known_cases(tiny_scene, tmp_path):
    """A view against itself agrees everywhere; against a copy 20% deeper from the same camera, nowhere."""
    depth = scene_depth(tiny_scene, "0000")
    layout.write_depth(tmp_path / "depth" / "0000.png", depth)
    assert depth_consistency(tiny_scene, tmp_path, ["0000", "0000"]) == (1.0, 2 * int((depth > 0).sum()))
    layout.write_depth(tmp_path / "depth" / "copy.png", 1.2 * depth)
    shutil.copy(tiny_scene / "pose" / "0000.txt", tiny_scene / "pose" / "copy.txt")
    shutil.copy(tiny_scene / "color" / "0000.png", tiny_scene / "color" / "copy.png")
    assert depth_consistency(tiny_scene, tmp_path, ["0000", "copy"])[0] == 0.0
    assert depth_consistency(tiny_scene, tmp_path, ["0000", "0004"]) == (None, 0)  # a third of the orbit apart: no overlap


def test_depth_is_unavailable_without_scene_depth_or_overlapping_views(tiny_scene, tmp_path):
    """No labels at all (no segmentation data, no machine labels) and no depth: PSNR, and a note."""
    frames = ["0000", "0004", "0008"]
    true = {n: scene_depth(tiny_scene, n) for n in frames}
    scene = without_labels(tiny_scene, depth=False)
    for folder in ("m2f_semantics", "m2f_instance", "m2f_segments", "m2f_probabilities"):
        shutil.rmtree(scene / folder)
    (scene / "segmentation_data.pkl").unlink()
    result = evaluate_predictions(scene, write_renders(scene, tmp_path / "pred", frames, true))
    assert result["psnr"] == pytest.approx(20 * math.log10(25.5)) and result["pq"] is None
    assert "depth_consistency" not in result and "depth: unavailable" in result["note"]


def test_eval_command_on_a_scene_without_ground_truth(tiny_scene, tmp_path, capsys):
    frames = ["0000", "0004", "0008"]
    pred = write_renders(tiny_scene, tmp_path / "pred", frames, {n: scene_depth(tiny_scene, n) for n in frames})
    scene = without_labels(tiny_scene)
    assert main(["eval", "--scene", str(scene), "--pred", str(pred), "--json", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["psnr"] == pytest.approx(20 * math.log10(25.5))
    assert json.loads((tmp_path / "scores.json").read_text())["depth_abs_rel"] < 0.01
    assert "note: " in printed.err and "no ground truth" in printed.err
