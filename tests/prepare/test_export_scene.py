"""`clusteringsdf export --scene SCENE --format nerfstudio|colmap`: transforms.json checked against
nerfstudio's field names and conventions (and read back by our own transforms.json import), the
COLMAP model read back by pycolmap; bad input is one line with exit code 2.

pycolmap reads the model in a child process: the package never imports pycolmap into a process
that writes PNG files (see clusteringsdf.prepare.colmap_worker), and this test session writes many.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.prepare.export import read_cameras
from clusteringsdf.prepare.pose_import import import_transforms

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])
needs_pycolmap = pytest.mark.skipif(importlib.util.find_spec("pycolmap") is None, reason="pycolmap is not installed")

READ_MODEL = """
import json, sys
import numpy as np
import pycolmap

model = pycolmap.Reconstruction(sys.argv[1])
points = []
for point_id, point in list(model.points3D.items())[:300]:
    element = point.track.elements[0]
    image = model.images[element.image_id]
    points.append({"xyz": list(point.xyz), "image": image.name, "xy": list(image.points2D[element.point2D_idx].xy)})
print(json.dumps({
    "cameras": [{"model": c.model.name, "width": c.width, "height": c.height, "params": list(c.params)} for c in model.cameras.values()],
    "images": {i.name: np.asarray(i.cam_from_world().matrix()).tolist() for i in model.images.values()},
    "points3D": model.num_points3D(),
    "points": points,
}))
"""


def _read_model(folder: Path) -> dict:
    """The COLMAP model in ``folder`` as pycolmap reads it (in a child process)."""
    done = subprocess.run([sys.executable, "-c", READ_MODEL, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_nerfstudio_transforms_use_nerfstudios_fields_and_opengl_cameras(tiny_scene_source, tmp_path):
    out = tmp_path / "ns"
    assert main(["export", "--scene", str(tiny_scene_source), "--format", "nerfstudio", "--out", str(out)]) == 0
    cameras = read_cameras(tiny_scene_source)
    data = json.loads((out / "transforms.json").read_text())
    k = cameras.k
    assert data["camera_model"] == "OPENCV"
    assert (data["w"], data["h"]) == (cameras.hw[1], cameras.hw[0])
    assert [data["fl_x"], data["fl_y"], data["cx"], data["cy"]] == pytest.approx([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5])
    assert len(data["frames"]) == len(cameras.names)
    for name, frame in zip(cameras.names, data["frames"]):
        assert (out / frame["file_path"]).read_bytes() == cameras.images[name].read_bytes()
        pose = layout.read_pose(tiny_scene_source / "pose" / f"{name}.txt")
        np.testing.assert_allclose(frame["transform_matrix"], pose @ FLIP_YZ, atol=1e-12)
        assert "mask_path" not in frame  # nerfstudio's mask_path is a binary valid-pixel mask
        instances = Image.open(out / frame["instance_path"])
        assert instances.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(instances), layout.read_label(tiny_scene_source / "m2f_instance" / f"{name}.png"))
        depth = Image.open(out / frame["depth_file_path"])
        assert depth.mode.startswith("I;16")  # millimetres, nerfstudio's default depth_unit_scale_factor 1e-3
        np.testing.assert_allclose(np.asarray(depth) / 1000.0, layout.read_depth(tiny_scene_source / "depth" / f"{name}.png"), atol=1e-6)
    splits = layout.read_splits(tiny_scene_source / "splits.json")
    assert [Path(f).stem for f in data["train_filenames"]] == splits["train"]
    assert [Path(f).stem for f in data["val_filenames"]] == [Path(f).stem for f in data["test_filenames"]] == splits["test"]


def test_nerfstudio_transforms_import_back_to_the_scenes_cameras(tiny_scene_source, tmp_path):
    out = tmp_path / "ns"
    assert main(["export", "--scene", str(tiny_scene_source), "--format", "nerfstudio", "--out", str(out)]) == 0
    cameras = read_cameras(tiny_scene_source)
    result = import_transforms(out / "transforms.json", cameras.names, cameras.hw, tmp_path / "work")
    np.testing.assert_allclose(result.k, cameras.k, atol=1e-9)
    for index, name in enumerate(cameras.names):
        np.testing.assert_allclose(result.poses[name], cameras.poses[index], atol=1e-9)


@needs_pycolmap
def test_colmap_model_reads_back_with_the_scenes_cameras_and_depth_points(tiny_scene_source, tmp_path):
    out = tmp_path / "colmap"
    assert main(["export", "--scene", str(tiny_scene_source), "--format", "colmap", "--out", str(out)]) == 0
    cameras = read_cameras(tiny_scene_source)
    model = _read_model(out / "sparse" / "0")
    k = cameras.k
    assert model["cameras"] == [{"model": "PINHOLE", "width": cameras.hw[1], "height": cameras.hw[0],
                                 "params": pytest.approx([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5])}]
    assert sorted(model["images"]) == sorted(p.name for p in (out / "images").iterdir()) == sorted(p.name for p in cameras.images.values())
    for index, name in enumerate(cameras.names):
        cam_from_world = np.vstack([model["images"][cameras.images[name].name], [0, 0, 0, 1]])
        np.testing.assert_allclose(np.linalg.inv(cam_from_world), cameras.poses[index], atol=1e-9)
    assert model["points3D"] > 1000
    k_colmap = np.array(model["cameras"][0]["params"])
    by_name = {cameras.images[n].name: i for i, n in enumerate(cameras.names)}
    for point in model["points"]:  # each point projects onto the pixel it was lifted from
        pose = cameras.poses[by_name[point["image"]]]
        camera = np.linalg.inv(pose)[:3] @ np.append(point["xyz"], 1.0)
        projected = k_colmap[:2] * camera[:2] / camera[2] + k_colmap[2:]
        np.testing.assert_allclose(projected, point["xy"], atol=1e-6)


@needs_pycolmap
def test_a_scene_without_depth_exports_cameras_without_points(tiny_scene, tmp_path):
    shutil.rmtree(tiny_scene / "depth")
    assert main(["export", "--scene", str(tiny_scene), "--format", "colmap", "--out", str(tmp_path / "colmap")]) == 0
    model = _read_model(tmp_path / "colmap" / "sparse" / "0")
    assert model["points3D"] == 0 and len(model["images"]) == len(read_cameras(tiny_scene).names)
    assert main(["export", "--scene", str(tiny_scene), "--format", "nerfstudio", "--out", str(tmp_path / "ns")]) == 0
    frames = json.loads((tmp_path / "ns" / "transforms.json").read_text())["frames"]
    assert not any("depth_file_path" in frame for frame in frames)


def test_an_existing_output_is_replaced_only_with_force(tiny_scene_source, tmp_path, capsys):
    out = tmp_path / "ns"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    args = ["export", "--scene", str(tiny_scene_source), "--format", "nerfstudio", "--out", str(out)]
    assert main(args) == 2
    assert str(out) in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main([*args, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["depth", "images", "masks", "transforms.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("case", ["run format", "missing scene", "no out", "out is the scene", "broken scene"])
def test_bad_input_is_one_line_and_exit_code_2(case, tiny_scene, tmp_path, capsys):
    if case == "broken scene":
        (tiny_scene / "pose" / "0000.txt").write_text("1 0 0\n")
    args = {
        "run format": ["--scene", str(tiny_scene), "--format", "obj", "--out", str(tmp_path / "out")],
        "missing scene": ["--scene", str(tmp_path / "nowhere"), "--format", "colmap", "--out", str(tmp_path / "out")],
        "no out": ["--scene", str(tiny_scene), "--format", "colmap"],
        "out is the scene": ["--scene", str(tiny_scene), "--format", "nerfstudio", "--out", str(tiny_scene), "--force"],
        "broken scene": ["--scene", str(tiny_scene), "--format", "nerfstudio", "--out", str(tmp_path / "out")],
    }[case]
    assert main(["export", *args]) == 2
    if case in ("run format", "no out"):  # options that do not go together: export's usage, then the error
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[0].startswith("usage: clusteringsdf export ") and lines[-1].startswith("clusteringsdf export: error: ")
        err = lines[-1]
    else:
        err = _one_error_line(capsys)
    expected = {"run format": "--format", "missing scene": "nowhere", "no out": "--out", "out is the scene": "would replace",
                "broken scene": "0000.txt"}[case]
    assert expected in err
    assert not (tmp_path / "out").exists()
    assert (tiny_scene / "color").is_dir()
