"""``prepare`` warns, once each and even with --quiet, when a capture makes a weak scene: classical
masks from colour alone, and a unit that is not metres (no depth, no metric poses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from clusteringsdf.cli import main
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare import PrepareOptions
from clusteringsdf.prepare.pipeline import capture_warnings

MASKS = "warning: classical masks from colour alone"
SCALE = "warning: no depth and no metric poses: the scene's unit is arbitrary"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=5, width=64, height=48, textured=True)


def _colmap_model(capture, folder: Path) -> Path:
    """A COLMAP text model of the capture's true poses (no points): imported poses of no known scale."""
    model = folder / "sparse" / "0"
    model.mkdir(parents=True)
    k = capture.k
    (model / "cameras.txt").write_text(f"1 PINHOLE {capture.width} {capture.height} {k[0, 0]} {k[1, 1]} {k[0, 2] + 0.5} {k[1, 2] + 0.5}\n")
    lines = []
    for index, (name, pose) in enumerate(zip(capture.names, capture.poses), start=1):
        world_to_cam = np.linalg.inv(pose)
        x, y, z, w = Rotation.from_matrix(world_to_cam[:3, :3]).as_quat()
        tx, ty, tz = world_to_cam[:3, 3]
        lines += [f"{index} {w} {x} {y} {z} {tx} {ty} {tz} 1 {name}.png", ""]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("")
    return folder / "sparse"


def test_colour_only_capture_warns_of_its_masks_and_its_unit_once_each(capture, tmp_path, capsys):
    out = tmp_path / "scene"
    code = main(["prepare", "--images", str(capture.root / "color"), "--out", str(out), "--poses", "colmap",
                 "--poses-path", str(_colmap_model(capture, tmp_path)), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0, err
    assert len(err) == 2 and err[0].startswith(MASKS) and err[1].startswith(SCALE), err
    assert "--depth DIR" in err[0] and "--segmenter mask2former --segmenter-weights DIR" in err[0] and "--segmenter import" in err[0]
    assert "not in metres" in err[1] and "--depth DIR" in err[1]
    assert json.loads((out / "prepare.json").read_text())["warnings"] == err
    assert main(["info", str(out)]) == 0
    assert "per scene unit (arbitrary scale" in capsys.readouterr().out


def test_metric_poses_without_depth_warn_only_of_the_masks(capture, tmp_path, capsys):
    out = tmp_path / "scene"
    code = main(["prepare", "--images", str(capture.root / "color"), "--out", str(out), "--poses", "scannet",
                 "--poses-path", str(capture.root), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and len(err) == 1 and err[0].startswith(MASKS), err


def test_depth_or_a_learned_segmenter_needs_no_warning(tmp_path):
    def warnings(**options) -> list[str]:
        metric = options.pop("metric")
        return capture_warnings(PrepareOptions(out=tmp_path / "scene", images=tmp_path, **options), "sfm", metric)

    assert warnings(depth=tmp_path, metric=True) == []
    assert warnings(segmenter="import", masks=tmp_path, masks_format="instance-png", metric=True) == []
    assert [line[:40] for line in warnings(segmenter="sam", metric=False)] == [SCALE[:40]]
    assert len(warnings(metric=False)) == 2
    transforms = capture_warnings(PrepareOptions(out=tmp_path / "scene", images=tmp_path), "transforms", False)
    assert "unit of transforms.json" in transforms[1]
