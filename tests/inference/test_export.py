"""`clusteringsdf export --run RUN --format obj|glb|ply|points|objects` and `render --split all`: each
format read back with the library its users read it with (trimesh for OBJ and GLB, plyfile for the
labelled PLYs, json for objects.json), and every bad input one line with exit code 2.

Most tests export a run whose field is known: the tiny run with its geometry replaced by spheres
(channel 1 a chair, 2 a bed, 3 a table, the room inside out), meshed into its RUN/meshes in
advance; the export command loads that run in place of the one on disk.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from plyfile import PlyData

from clusteringsdf.cli import build_parser, main
from clusteringsdf.data.layout import read_splits
from clusteringsdf.inference import export as export_module
from clusteringsdf.inference.mesh import extract_meshes
from clusteringsdf.inference.palette import instance_color
from clusteringsdf.runs import load_trained_run

CPU = torch.device("cpu")
CENTRES = torch.tensor([[0.0, 0.0, 0.0], [-0.25, 0.15, 0.0], [0.25, -0.1, 0.05], [0.0, -0.3, -0.2]])
RADII = [0.7, 0.12, 0.08, 0.1]  # the room (inside out), a chair, a bed, a table
CLASSES = {1: 5, 2: 4, 3: 7}  # chair and bed are things, table is stuff
WALL = 1  # the background's class
RESOLUTION = 64


@pytest.fixture(scope="module")
def tiny_run(tiny_scene_source, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    code = main(["train", "--data", str(tiny_scene_source), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "40", "--quiet"])
    assert code == 0
    return run


def _spheres(run: Path):
    """The run loaded with its geometry replaced by the spheres of CENTRES / RADII and its votes by CLASSES."""
    from clusteringsdf.model.field import GeometryOutput

    trained = load_trained_run(run, CPU)
    channels, feature_dim = trained.model.field.channels, trained.model.field.config.feature_dim

    def geometry(points, with_jacobian=False):
        sdf = torch.full((points.shape[0], channels), 1.0)
        sdf[:, 0] = RADII[0] - points.norm(dim=-1)
        for c in (1, 2, 3):
            sdf[:, c] = (points - CENTRES[c]).norm(dim=-1) - RADII[c]
        return GeometryOutput(sdf=sdf, feature=torch.zeros(points.shape[0], feature_dim))

    def semantic_logits(feature):
        logits = torch.zeros(feature.shape[0], trained.model.field.num_classes)
        logits[:, WALL] = 1.0
        return logits

    trained.model.field.geometry = geometry
    trained.model.field.semantic_logits = semantic_logits  # the room is a wall
    votes = trained.method.votes.votes
    votes.zero_()
    votes[0, WALL] = 20.0
    for channel, class_id in CLASSES.items():
        votes[channel, class_id] = 10.0
    return trained


@pytest.fixture(scope="module")
def sphere_run(tiny_run, tmp_path_factory):
    """(run folder, its TrainedRun of spheres, index.json): a copy of the tiny run meshed from the
    spheres; export loads that TrainedRun for it."""
    run = tmp_path_factory.mktemp("spheres") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("meshes", "export", "render_*"))
    trained = _spheres(run)
    trained.run_dir = run
    index = extract_meshes(trained, run / "meshes", resolution=RESOLUTION, observer=None)
    assert sorted(o["id"] for o in index["objects"]) == [1, 2, 3]
    real = export_module.load_trained_run

    def load(run_dir, device, *args, **kwargs):
        return trained if Path(run_dir).resolve() == run.resolve() else real(run_dir, device, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "load_trained_run", load)
        yield run, trained, index


def _export(run: Path, fmt: str, *extra: str) -> Path:
    assert main(["export", "--run", str(run), "--format", fmt, "--device", "cpu", *extra]) == 0
    return run / "export" / fmt


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _normalised(trained, points: np.ndarray) -> np.ndarray:
    return trained.scene.normalization.apply(np.asarray(points, dtype=np.float64))


def _nearest_channel(trained, points: np.ndarray) -> np.ndarray:
    """(N,) the sphere (channel) each world point lies on."""
    p = _normalised(trained, points)
    gaps = [np.abs(np.linalg.norm(p - CENTRES[c].numpy(), axis=1) - RADII[c]) for c in range(4)]
    return np.argmin(np.stack(gaps, axis=1), axis=1)


def test_the_parser_offers_every_format():
    from clusteringsdf.prepare.export import SCENE_FORMATS

    for fmt in export_module.RUN_FORMATS + SCENE_FORMATS:
        assert build_parser().parse_args(["export", "--run", "RUN", "--format", fmt]).format == fmt


def test_obj_one_file_per_object_with_its_palette_material(sphere_run):
    run, _, index = sphere_run
    out = _export(run, "obj")
    stems = sorted(Path(o["file"]).stem for o in index["objects"])
    assert sorted(p.stem for p in out.glob("*.obj")) == sorted([*stems, "scene"])
    for entry in index["objects"]:
        stem = Path(entry["file"]).stem
        assert (out / f"{stem}.mtl").is_file()
        mesh = trimesh.load(out / f"{stem}.obj", process=False)
        assert len(mesh.vertices) == entry["vertices"]
        assert np.asarray(mesh.visual.material.main_color)[:3].tolist() == instance_color(np.array([entry["id"]]))[0].tolist()
        np.testing.assert_allclose(np.asarray(mesh.vertices).min(0), entry["bbox_min"], atol=1e-3)  # world metres, like the PLYs
    scene = trimesh.load(out / "scene.obj", process=False)
    assert len(scene.faces) == index["scene"]["faces"]
    assert np.asarray(scene.visual.vertex_colors).shape[0] == len(scene.vertices)


def test_glb_names_every_object_and_puts_its_id_and_class_in_the_extras(sphere_run):
    run, _, index = sphere_run
    scene = trimesh.load(_export(run, "glb") / "scene.glb", force="scene", process=False)
    by_stem = {Path(o["file"]).stem: o for o in index["objects"]}
    assert sorted(scene.graph.nodes_geometry) == sorted([*by_stem, "background"])
    for node in scene.graph.nodes_geometry:
        extras = scene.graph.transforms.edge_data[(scene.graph.transforms.parents[node], node)]["metadata"]
        entry = by_stem.get(node, {"id": 0, "class": -1})
        assert (extras["id"], extras["class"]) == (entry["id"], entry["class"])
        geometry = scene.geometry[scene.graph[node][1]]
        assert geometry.visual.kind == "vertex" and len(geometry.visual.vertex_colors) == len(geometry.vertices)


def test_ply_labels_every_vertex_with_its_object_and_class(sphere_run):
    run, trained, index = sphere_run
    ply = PlyData.read(str(_export(run, "ply") / "scene.ply"))
    vertex = ply["vertex"].data
    assert {"x", "y", "z", "red", "green", "blue", "instance", "semantic"} <= set(vertex.dtype.names)
    assert len(vertex) == index["scene"]["vertices"] and len(ply["face"].data) == index["scene"]["faces"]
    things = {o["id"] for o in index["objects"] if o["thing"]}
    assert set(np.unique(vertex["instance"])) == things | {0} == {0, 1, 2}
    on = _nearest_channel(trained, np.stack([vertex[a] for a in "xyz"], axis=1))
    assert all((on == channel).any() for channel in (1, 2, 3))
    for channel in np.unique(on):
        instance = channel if channel in things else 0
        semantic = CLASSES.get(channel, WALL)
        assert (vertex["instance"][on == channel] == instance).mean() > 0.95
        assert (vertex["semantic"][on == channel] == semantic).mean() > 0.95


def test_points_lie_on_the_surface_with_colours_and_labels_and_repeat_with_the_seed(sphere_run, tmp_path):
    run, trained, _ = sphere_run
    points = PlyData.read(str(_export(run, "points", "--points", "3000") / "points.ply"))["vertex"].data
    assert len(points) == 3000
    assert {"x", "y", "z", "red", "green", "blue", "instance", "semantic"} <= set(points.dtype.names)
    xyz = np.stack([points[a] for a in "xyz"], axis=1)
    on = _nearest_channel(trained, xyz)
    gap = np.abs(np.linalg.norm(_normalised(trained, xyz) - CENTRES.numpy()[on], axis=1) - np.array(RADII)[on])
    step = float((trained.model.bbox[1] - trained.model.bbox[0]).max()) / (RESOLUTION - 1)
    assert gap.max() < step
    assert (points["instance"][on == 1] == 1).mean() > 0.95 and (points["semantic"][on == 3] == CLASSES[3]).mean() > 0.95
    assert main(["export", "--run", str(run), "--format", "points", "--points", "3000", "--out", str(tmp_path / "again")]) == 0
    again = PlyData.read(str(tmp_path / "again" / "points.ply"))["vertex"].data
    np.testing.assert_array_equal(np.stack([again[a] for a in "xyz"], axis=1), xyz)


def test_objects_json_describes_every_object_in_world_metres(sphere_run):
    run, trained, index = sphere_run
    data = json.loads((_export(run, "objects") / "objects.json").read_text())
    assert "metres" in data["units"]
    assert [o["id"] for o in data["objects"]] == sorted(o["id"] for o in index["objects"])
    scale = trained.scene.normalization.scale
    for entry in data["objects"]:
        listed = next(o for o in index["objects"] if o["id"] == entry["id"])
        assert (entry["channels"], entry["class"], entry["class_name"], entry["thing"]) == (
            listed["channels"], listed["class"], listed["class_name"], listed["thing"])
        np.testing.assert_allclose(entry["bbox_min"], listed["bbox_min"], atol=1e-3)
        np.testing.assert_allclose(entry["bbox_max"], listed["bbox_max"], atol=1e-3)
        centre = trained.scene.normalization.invert(CENTRES[entry["id"]].numpy().astype(np.float64))
        radius = RADII[entry["id"]] / scale
        assert np.linalg.norm(np.asarray(entry["centroid"]) - centre) < 0.1 * radius
        assert entry["area"] == pytest.approx(4 * math.pi * radius**2, rel=0.15)


def test_a_run_without_meshes_is_meshed_first(tiny_run):
    out = _export(tiny_run, "objects", "--resolution", "24")
    index = json.loads((tiny_run / "meshes" / "index.json").read_text())
    assert index["resolution"] == 24
    assert [o["id"] for o in json.loads((out / "objects.json").read_text())["objects"]] == sorted(o["id"] for o in index["objects"])
    assert not list(tiny_run.glob(".meshes.tmp-*"))


def test_render_all_renders_every_frame(tiny_run, tiny_scene_source):
    assert main(["render", "--run", str(tiny_run), "--split", "all", "--device", "cpu", "--quiet"]) == 0
    splits = read_splits(tiny_scene_source / "splits.json")
    frames = {*splits["train"], *splits["test"]}
    for folder in ("rgb", "depth", "pred_semantics", "pred_instance"):
        assert {p.stem for p in (tiny_run / "render_all" / folder).glob("*.png")} == frames


def test_an_existing_output_is_replaced_only_with_force(sphere_run, capsys):
    run, _, _ = sphere_run
    out = run / "export" / "mine"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    args = ["export", "--run", str(run), "--format", "objects", "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    assert str(out) in _one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*args, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["objects.json"]
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no temporary folder left


@pytest.mark.parametrize("case", ["scene format", "missing run", "neither", "both", "replace the run", "bad points"])
def test_bad_input_is_one_line_and_exit_code_2(case, sphere_run, tiny_scene_source, tmp_path, capsys):
    run, _, _ = sphere_run
    args = {
        "scene format": ["--run", str(run), "--format", "colmap"],
        "missing run": ["--run", str(tmp_path / "nowhere"), "--format", "obj"],
        "neither": ["--format", "obj"],
        "both": ["--run", str(run), "--scene", str(tiny_scene_source), "--format", "obj"],
        "replace the run": ["--run", str(run), "--format", "obj", "--out", str(run.parent), "--force"],
        "bad points": ["--run", str(run), "--format", "points", "--points", "0"],
    }[case]
    before = sorted(p.name for p in run.iterdir())
    assert main(["export", *args]) == 2
    if case in ("scene format", "neither", "both"):  # options that do not go together: export's usage, then the error
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[0].startswith("usage: clusteringsdf export ") and lines[-1].startswith("clusteringsdf export: error: ")
        err = lines[-1]
    else:
        err = _one_error_line(capsys)
    assert {"scene format": "--format", "missing run": "nowhere", "replace the run": "would replace", "bad points": "--points"}.get(case, "") in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_an_unknown_format_is_refused_by_the_parser(sphere_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--run", str(sphere_run[0]), "--format", "stl"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'stl'" in capsys.readouterr().err
