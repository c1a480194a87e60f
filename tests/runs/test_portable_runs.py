"""A run folder moved with its scene renders, meshes, reports and is viewed at its new place; moved
alone, it finds the scene with --scene, and refuses a folder of another scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clusteringsdf.cli import main
from clusteringsdf.runs import SCENE_FILE
from clusteringsdf.viewer.server import start_viewer


@pytest.fixture(scope="module")
def project(tiny_scene_source, tmp_path_factory) -> Path:
    """A project folder with a scene and a run trained on it (gt labels, a few steps)."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_scene_source, root / "scenes" / "tiny")
    run = root / "runs" / "tiny"
    assert main(["train", "--data", str(root / "scenes" / "tiny"), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "8",
                 "--quiet"]) == 0
    return root


def test_the_run_records_its_scene(project):
    record = json.loads((project / "runs" / "tiny" / SCENE_FILE).read_text())
    assert record["path"] == "../../scenes/tiny" and len(record["frames"]) == len(record["poses"]) == 12
    assert set(record["splits"]) == {"train", "test"} and record["classes"]["num_classes"] > 2


def test_a_project_copied_elsewhere_works_there(project, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    shutil.rmtree(project / "scenes")  # the original scene is gone: only the copy can be used
    try:
        run = moved / "runs" / "tiny"
        assert main(["render", "--run", str(run), "--quiet"]) == 0
        assert main(["mesh", "--run", str(run), "--resolution", "24"]) == 0
        assert "without the cameras' observations" not in capsys.readouterr().err  # it found the moved scene
        assert main(["report", "--run", str(run), "--quiet"]) == 0
        assert (run / "report.html").is_file() and (run / "render_test" / "pred_instance").is_dir()
        viewer = start_viewer(run, port=0, device="cpu", log=lambda _line: None)
        viewer.stop()
    finally:
        shutil.copytree(moved / "scenes", project / "scenes")


def test_a_run_moved_alone_takes_scene(project, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(project / "runs" / "tiny", run)
    scene = project / "scenes" / "tiny"
    hidden = project / "scenes" / "hidden"
    scene.rename(hidden)
    try:
        assert main(["render", "--run", str(run), "--quiet"]) == 0  # cameras come from the run folder
        assert main(["report", "--run", str(run), "--quiet"]) == 2
        assert "pass --scene" in capsys.readouterr().err
        assert main(["report", "--run", str(run), "--scene", str(hidden), "--quiet"]) == 0
        other = tmp_path / "other"
        shutil.copytree(hidden, other)
        for path in (other / "pose").iterdir():  # the same frames half a metre to the side
            pose = np.loadtxt(path)
            pose[0, 3] += 0.5
            np.savetxt(path, pose)
        assert main(["mesh", "--run", str(run), "--scene", str(other)]) == 2
        err = capsys.readouterr().err.strip()
        assert "holds another scene" in err and len(err.splitlines()) == 1
    finally:
        hidden.rename(scene)
