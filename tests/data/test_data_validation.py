"""Bad scene input gives one clear error line naming the file and the problem, exit code 2, and no
traceback; scenes written by other tools in the same layout are read."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clusteringsdf.cli import main
from clusteringsdf.data import load_scene
from clusteringsdf.data import layout


def run_info(scene: Path, capsys) -> tuple[int, str]:
    code = main(["info", str(scene)])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_valid_scene_prints_a_summary(tiny_scene, capsys):
    code = main(["info", str(tiny_scene)])
    out = capsys.readouterr().out
    assert code == 0
    assert "frames       12" in out and "64x48" in out and "depth" in out


def test_missing_scene_folder(tmp_path, capsys):
    code, err = run_info(tmp_path / "nowhere", capsys)
    assert_one_line_error(code, err, "nowhere", "scene folder not found")


def test_missing_color_folder(tiny_scene, capsys):
    shutil.rmtree(tiny_scene / "color")
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "color", "missing folder")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("1 0 0 0\n0 1 0 0\n0 0 1 nan\n0 0 0 1\n", "non-finite"),
        ("1 0 0 0\n0 1 0 0\n0 0 1 0\n", "4x4"),
        ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "not a rigid transform"),
        ("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 1 1\n", "last row"),
        ("a b c d\n", "not a numeric matrix"),
    ],
)
def test_bad_pose(tiny_scene, capsys, content, problem):
    (tiny_scene / "pose" / "0003.txt").write_text(content)
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0003.txt", problem)


def test_missing_pose(tiny_scene, capsys):
    (tiny_scene / "pose" / "0005.txt").unlink()
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0005.txt", "file not found")


def test_image_sizes_disagree(tiny_scene, capsys):
    path = tiny_scene / "color" / "0002.png"
    Image.open(path).resize((32, 24)).save(path)
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0002.png", "32x24", "64x48")


def test_truncated_image(tiny_scene, capsys):
    path = tiny_scene / "color" / "0004.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0004.png", "truncated")


def test_unreadable_label_map(tiny_scene, capsys):
    (tiny_scene / "m2f_instance" / "0001.png").write_bytes(b"not a png at all")
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0001.png", "unreadable")


def test_label_map_of_the_wrong_shape(tiny_scene, capsys):
    layout.write_label(tiny_scene / "rs_semantics" / "0006.png", np.zeros((47, 64), dtype=np.uint8))
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "rs_semantics", "0006.png", "label map is 64x47")


def test_rgb_label_map_is_refused(tiny_scene, capsys):
    Image.new("RGB", (64, 48)).save(tiny_scene / "m2f_semantics" / "0000.png")
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "0000.png", "single-channel")


def test_split_names_a_missing_frame(tiny_scene, capsys):
    splits = json.loads((tiny_scene / "splits.json").read_text())
    splits["test"].append("0999")
    (tiny_scene / "splits.json").write_text(json.dumps(splits))
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "splits.json", "'0999'")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/clusteringsdf_pwned",))


def test_pickle_with_forbidden_content(tiny_scene, capsys):
    target = Path("/tmp/clusteringsdf_pwned")
    if target.exists():
        target.unlink()
    data = {"fg_classes": [5], "bg_classes": [0, 1], "payload": _Exploit()}
    (tiny_scene / "segmentation_data.pkl").write_bytes(pickle.dumps(data))
    code, err = run_info(tiny_scene, capsys)
    assert_one_line_error(code, err, "segmentation_data.pkl", "forbidden content")
    assert not target.exists()


def test_pickle_with_numpy_numbers_is_accepted(tiny_scene):
    data = pickle.loads((tiny_scene / "segmentation_data.pkl").read_bytes())
    data["fg_classes"] = np.array(data["fg_classes"], dtype=np.int64)
    data["bg_classes"] = [np.int32(c) for c in data["bg_classes"]]
    (tiny_scene / "segmentation_data.pkl").write_bytes(pickle.dumps(data))
    scene = load_scene(tiny_scene)
    assert 5 in scene.classes.thing_classes


def test_scene_written_by_another_tool(tiny_scene_source, tmp_path):
    """Replica-style names (0_0012), JPEG colour, 8-bit/16-bit/palette label PNGs, low-resolution probabilities."""
    reference = load_scene(tiny_scene_source)
    other = tmp_path / "other"
    for folder in ("intrinsic",):
        shutil.copytree(tiny_scene_source / folder, other / folder)
    shutil.copy(tiny_scene_source / "segmentation_data.pkl", other / "segmentation_data.pkl")
    names = reference.frame_names
    rename = {name: f"0_{int(name):04d}" for name in names}
    for name in names:
        new = rename[name]
        rgb = layout.read_color(tiny_scene_source / "color" / f"{name}.png")
        layout.write_color(other / "color" / f"{new}.jpg", rgb)
        (other / "pose").mkdir(exist_ok=True)
        shutil.copy(tiny_scene_source / "pose" / f"{name}.txt", other / "pose" / f"{new}.txt")
        for folder, kind in (("m2f_semantics", "16bit"), ("m2f_instance", "16bit"), ("rs_semantics", "palette"), ("rs_instance", "8bit")):
            labels = layout.read_label(tiny_scene_source / folder / f"{name}.png")
            (other / folder).mkdir(exist_ok=True)
            if kind == "16bit":
                image = Image.fromarray(labels.astype(np.uint16))
            elif kind == "palette":
                image = Image.fromarray(labels.astype(np.uint8), mode="L").convert("P")
            else:
                image = Image.fromarray(labels.astype(np.uint8), mode="L")
            image.save(other / folder / f"{new}.png")
        probability, confidence = layout.read_probabilities(tiny_scene_source / "m2f_probabilities" / f"{name}.npz")
        (other / "m2f_probabilities").mkdir(exist_ok=True)
        np.savez(other / "m2f_probabilities" / f"{new}.npz", probability=probability[::2, ::2].astype(np.float32), confidence=confidence[::2, ::2])
    splits = json.loads((tiny_scene_source / "splits.json").read_text())
    layout.write_splits(other / "splits.json", {"train": [rename[n] for n in splits["train"]], "val": [rename[n] for n in splits["test"]]})

    scene = load_scene(other)
    assert scene.frame_names == [rename[n] for n in names]  # numeric order of 0_xxxx names
    assert scene.hw == reference.hw
    assert np.array_equal(scene.m2f_instance, reference.m2f_instance)
    assert np.array_equal(scene.gt_semantics, reference.gt_semantics)
    assert np.abs(scene.colors.astype(int) - reference.colors.astype(int)).mean() < 3  # JPEG
    assert scene.confidence.shape == reference.confidence.shape
    assert np.abs(scene.confidence - reference.confidence).mean() < 0.1
    assert np.array_equal(scene.split("test"), reference.split("test"))
    assert scene.depths is None  # optional components may be absent
    assert np.allclose(scene.poses[:, :3, :3], reference.poses[:, :3, :3], atol=1e-6)


def test_downscale_rescales_intrinsics(tiny_scene_source):
    full = load_scene(tiny_scene_source)
    half = load_scene(tiny_scene_source, downscale=2)
    assert half.hw == (24, 32)
    k, k2 = full.intrinsics[0], half.intrinsics[0]
    assert np.isclose(k2[0, 0], k[0, 0] / 2) and np.isclose(k2[0, 2], (k[0, 2] + 0.5) / 2 - 0.5)
    assert half.m2f_instance.shape == (12, 24, 32)
