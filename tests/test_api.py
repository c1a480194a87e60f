"""The Python API (clusteringsdf.load_run): SDF, objects at points, renders from any camera, meshes
and objects, in world metres; it needs only the run folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import clusteringsdf
from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.errors import ClusteringSDFError


@pytest.fixture(scope="module")
def api_run(tiny_scene_source, tmp_path_factory) -> Path:
    """A tiny panoptic run on the machine labels, rendered (test split) by the command line."""
    root = tmp_path_factory.mktemp("api")
    scene = root / "scene"
    shutil.copytree(tiny_scene_source, scene)
    run = root / "run"
    assert main(["train", "--data", str(scene), "--out", str(run), "--preset", "tiny", "--iters", "200", "--quiet"]) == 0
    assert main(["render", "--run", str(run), "--quiet"]) == 0
    return run


def world_camera(scene: Path, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), camera-to-world pose (4, 4)) of a scene frame, as the scene's files give them."""
    return layout.read_intrinsics(scene / layout.INTRINSICS_FILE)[:3, :3], layout.read_pose(scene / "pose" / f"{frame}.txt")


def test_a_render_from_a_camera_is_the_render_commands_view(api_run):
    run = clusteringsdf.load_run(api_run, device="cpu")
    scene = api_run.parent / "scene"
    frame = sorted(p.stem for p in (api_run / "render_test" / "pred_instance").iterdir())[0]
    k, pose = world_camera(scene, frame)
    hw = layout.read_color(scene / "color" / f"{frame}.png").shape[:2]
    out = run.render(k, pose, hw)
    assert out.rgb.shape == (*hw, 3) and out.normal.shape == (*hw, 3) and out.depth.shape == hw
    assert np.array_equal(out.instance, layout.read_label(api_run / "render_test" / "pred_instance" / f"{frame}.png"))
    assert np.array_equal(out.semantic, layout.read_label(api_run / "render_test" / "pred_semantics" / f"{frame}.png"))
    written = layout.read_depth(api_run / "render_test" / "depth" / f"{frame}.png")  # metres, millimetre steps
    assert np.abs(out.depth - written).max() < 1e-3
    with pytest.raises(ClusteringSDFError, match="rigid"):
        run.render(k, pose * 2.0, hw)


def analytic(run) -> tuple[torch.Tensor, torch.Tensor]:
    """Give the run's field known spheres: channel 1 a chair (class 5) of radius 0.12 at c1, channel 2
    a bed (class 4) of radius 0.08 at c2, the room inside out; returns the normalised centres and radii."""
    from clusteringsdf.model.field import GeometryOutput

    trained = run._trained
    centres = torch.tensor([[0.0, 0.0, 0.0], [-0.25, 0.15, 0.0], [0.25, -0.1, 0.05]])
    radii = torch.tensor([0.7, 0.12, 0.08])
    channels, features = trained.model.field.channels, trained.model.field.config.feature_dim

    def geometry(points, with_jacobian=False):
        sdf = torch.full((points.shape[0], channels), 1.0)
        sdf[:, 0] = radii[0] - points.norm(dim=-1)
        for c in (1, 2):
            sdf[:, c] = (points - centres[c]).norm(dim=-1) - radii[c]
        return GeometryOutput(sdf=sdf, feature=torch.zeros(points.shape[0], features))

    trained.model.field.geometry = geometry
    votes = trained.method.votes.votes
    votes.zero_()
    votes[1, 5], votes[1, 4], votes[2, 4], votes[0, 1] = 9.0, 1.0, 5.0, 20.0
    trained.object_map = None
    return centres, radii


def test_objects_points_and_meshes_of_a_known_field(api_run, tmp_path):
    run = clusteringsdf.load_run(api_run, device="cpu")
    centres, radii = analytic(run)
    to_world = run._trained.scene.normalization.invert
    scale = run._trained.scene.normalization.scale
    objects = {o.id: o for o in run.objects}
    assert set(objects) == {1, 2}
    chair, bed = objects[1], objects[2]
    assert (chair.class_id, chair.class_name, chair.thing, bed.class_name) == (5, "chair", True, "bed")
    assert chair.score == 0.9 and bed.score == 1.0  # the share of its labels that gave it its class
    assert np.allclose(chair.centroid, to_world(centres[1].numpy()), atol=0.02 / scale)
    assert np.allclose(chair.box_max - chair.box_min, 2 * 0.12 / scale, atol=0.04 / scale)
    points = to_world(np.stack([centres[1].numpy(), centres[2].numpy(), np.array([0.0, -0.4, 0.0])]))
    assert run.object_ids(points).tolist() == [1, 2, 0]  # inside the chair, inside the bed, free space: background
    assert run.classes_at(points)[:2].tolist() == [5, 4]
    assert np.allclose(run.sdf(points), np.array([-0.12, -0.08, 0.3]) / scale, atol=1e-5)  # metres
    meshes = {m.metadata["id"]: m for m in clusteringsdf.load_run(api_run, device="cpu").meshes(resolution=48)}
    assert meshes and all(m.metadata["class_name"] == clusteringsdf.load_run(api_run).classes.names[m.metadata["class"]] for m in meshes.values())


def test_sdf_is_in_world_metres(api_run):
    run = clusteringsdf.load_run(api_run, device="cpu")
    trained = run._trained
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (100, 3))
    scene = trained.scene
    world = scene.normalization.invert(points)
    with torch.no_grad():
        normalised = trained.model.field.geometry(torch.as_tensor(points, dtype=torch.float32)).scene_sdf.numpy()
    assert np.allclose(run.sdf(world), normalised / scene.normalization.scale, rtol=1e-5, atol=1e-6)
    with pytest.raises(ClusteringSDFError, match=r"\(N, 3\)"):
        run.sdf(np.zeros((4, 2)))


def test_loading_needs_only_the_run_folder(api_run, tmp_path):
    """With the scene folder gone, the run still answers and renders; meshing says that it cleans
    without observations."""
    copy = tmp_path / "run"
    shutil.copytree(api_run, copy, ignore=shutil.ignore_patterns("meshes"))
    scene = api_run.parent / "scene"
    moved = api_run.parent / "scene-elsewhere"
    scene.rename(moved)
    try:
        run = clusteringsdf.load_run(copy, device="cpu")
        assert run.sdf(np.zeros((1, 3))).shape == (1,) and run.objects
        k, pose = world_camera(moved, "0000")
        assert run.render(k, pose, (12, 16), fast=True).rgb.shape == (12, 16, 3)
        assert run.meshes(resolution=32) is not None
        assert (copy / "meshes" / "index.json").is_file()
    finally:
        moved.rename(scene)


def test_the_documented_example_runs(api_run):
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "query_run.py"
    done = subprocess.run([sys.executable, str(example), str(api_run)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "object" in done.stdout and "render (96, 128, 3)" in done.stdout and "mesh" in done.stdout
