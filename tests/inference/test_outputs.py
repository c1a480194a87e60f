"""What users take away from a run: per-object meshes, geometry scores, novel-view trajectories,
offscreen mesh previews and the HTML report."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from clusteringsdf.cli import main
from clusteringsdf.data.mesh_io import read_labelled_mesh, write_mesh
from clusteringsdf.evaluation.geometry import evaluate_meshes, surface_distances
from clusteringsdf.inference.channels import object_map
from clusteringsdf.inference.mesh import extract_meshes
from clusteringsdf.inference.mesh_preview import preview_mesh
from clusteringsdf.inference.palette import instance_color
from clusteringsdf.inference.report import build_report
from clusteringsdf.inference.trajectory import render_trajectory, trajectory_poses
from clusteringsdf.runs import load_trained_run

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_run(tiny_scene_source, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    code = main(["train", "--data", str(tiny_scene_source), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "40", "--quiet"])
    assert code == 0
    return run


def test_meshes_open_and_match_the_segmented_objects(tiny_run, tmp_path):
    trained = load_trained_run(tiny_run, CPU)
    index = extract_meshes(trained, tmp_path / "meshes", resolution=40)
    scene_mesh = trimesh.load(tmp_path / "meshes" / "scene_instance.ply", process=False)
    assert len(scene_mesh.faces) == index["scene"]["faces"] > 0
    assert np.asarray(scene_mesh.visual.vertex_colors).shape[0] == len(scene_mesh.vertices)
    for entry in index["objects"]:
        mesh = trimesh.load(tmp_path / "meshes" / entry["file"], process=False)
        assert len(mesh.vertices) == entry["vertices"] > 0
    assert json.loads((tmp_path / "meshes" / "index.json").read_text()) == index


GHOST = (torch.tensor([-0.13, 0.15, 0.0]), 0.05)  # a ball of channel 3 on the chair's surface


class SeenWhere:
    """An observer (inference.mesh.Observer) that saw the world points where ``test(points)`` holds,
    once each, without labels."""

    def __init__(self, test) -> None:
        self.test = test

    def counts(self, points, label=None):
        return self.test(points).astype(np.int64), None


def _analytic_run(tiny_run, ghost: bool = False):
    """The tiny run with a field whose channels are known spheres: channel 1 (a chair) at radius 0.12
    with a small satellite sphere (a floater), channel 2 (a bed) at 0.08, the room inside out; with
    ``ghost``, channel 3 (which owns no pixels) has a ball straddling the chair's surface. The
    scene's depth maps are not of this field: meshes of it are extracted with ``observer=None`` or
    an observer of the test's own."""
    from clusteringsdf.model.field import GeometryOutput

    trained = load_trained_run(tiny_run, CPU)
    centres = torch.tensor([[0.0, 0.0, 0.0], [-0.25, 0.15, 0.0], [0.25, -0.1, 0.05]])
    radii = torch.tensor([0.0, 0.12, 0.08])
    channels = trained.model.field.channels

    def geometry(points, with_jacobian=False):
        sdf = torch.full((points.shape[0], channels), 1.0)
        sdf[:, 0] = 0.7 - points.norm(dim=-1)  # the room: inside out
        for c in (1, 2):
            sdf[:, c] = (points - centres[c]).norm(dim=-1) - radii[c]
        satellite = (points - torch.tensor([-0.25, 0.15, 0.2])).norm(dim=-1) - 0.02  # 3% of the area
        sdf[:, 1] = torch.minimum(sdf[:, 1], satellite)
        if ghost:
            sdf[:, 3] = (points - GHOST[0]).norm(dim=-1) - GHOST[1]
        return GeometryOutput(sdf=sdf, feature=torch.zeros(points.shape[0], trained.model.field.config.feature_dim))

    trained.model.field.geometry = geometry
    votes = trained.method.votes.votes
    votes.zero_()
    votes[1, 5], votes[2, 4], votes[0, 1] = 10.0, 5.0, 20.0  # channel 1 a chair, 2 a bed; channel 3 owns nothing
    return trained, centres, radii


def test_object_meshes_are_their_channels_surfaces(tiny_run, tmp_path):
    """Each object mesh is its channel's sphere, with its voted class, palette colour and name; a
    channel without votes gets no mesh; the small satellite is cleaned away (a floater)."""
    trained, centres, radii = _analytic_run(tiny_run)
    index = extract_meshes(trained, tmp_path / "meshes", resolution=64, observer=None)
    names = trained.scene.classes.names
    assert [o["id"] for o in index["objects"]] == [1, 2]
    for entry in index["objects"]:
        c = entry["id"]
        assert entry["class"] == (5 if c == 1 else 4) and entry["thing"]
        assert entry["file"] == f"objects/{c:02d}_{names[entry['class']]}.ply"
        mesh = trimesh.load(tmp_path / "meshes" / entry["file"], process=False)
        normalised = trained.scene.normalization.apply(np.asarray(mesh.vertices))
        distance = np.linalg.norm(normalised - centres[c].numpy(), axis=1)
        step = float((trained.model.bbox[1] - trained.model.bbox[0]).max()) / 63
        assert np.abs(distance - float(radii[c])).max() < step  # on its sphere (no satellite), within a voxel
        colours = np.unique(np.asarray(mesh.visual.vertex_colors)[:, :3], axis=0)
        assert colours.tolist() == instance_color(np.array([c])).tolist()
        assert entry["floater_share"] == 0.0
    kept = extract_meshes(trained, tmp_path / "all", resolution=64, min_component=0.0, observer=None)
    assert kept["objects"][0]["floater_share"] > 0  # without cleaning the satellite stays, as a floater


def test_object_meshes_leave_out_what_another_channel_contains(tiny_run, tmp_path):
    """The chair's surface inside channel 3's ball is not part of the chair's mesh (it is not the
    chair's, the scene there is channel 3's); --watertight keeps the whole closed sphere."""
    trained, _, _ = _analytic_run(tiny_run, ghost=True)
    index = extract_meshes(trained, tmp_path / "meshes", resolution=64, observer=None)
    chair = trimesh.load(tmp_path / "meshes" / index["objects"][0]["file"], process=False)
    inside_ghost = np.linalg.norm(trained.scene.normalization.apply(np.asarray(chair.vertices)) - GHOST[0].numpy(), axis=1) < GHOST[1]
    assert not inside_ghost.any()
    closed = extract_meshes(trained, tmp_path / "closed", resolution=64, watertight=True, observer=None)
    whole = trimesh.load(tmp_path / "closed" / closed["objects"][0]["file"], process=False)
    assert whole.area > chair.area * 1.02  # the cap inside the ghost ball is about 4% of the sphere


def _bed_and_channel_3(tiny_run, channel_3):
    """The analytic run with channel 3's SDF set to ``channel_3(points, bed centre, bed radius, grid
    step)``, and an observer that saw only what lies above the bed's centre. Returns (trained,
    observer, bed centre, bed radius, step, normalise)."""
    trained, centres, radii = _analytic_run(tiny_run)
    step = float((trained.model.bbox[1] - trained.model.bbox[0]).max()) / 63
    bed, radius = centres[2], float(radii[2])
    normalise = trained.scene.normalization.apply
    inner = trained.model.field.geometry

    def geometry(points, with_jacobian=False):
        out = inner(points)
        out.sdf[:, 3] = channel_3(points, bed, radius, step)
        return out

    trained.model.field.geometry = geometry
    above = SeenWhere(lambda world: normalise(world)[:, 2] > float(bed[2]))
    return trained, above, bed, radius, step, normalise


def _object_vertices(out_dir: Path, index: dict, channel: int, normalise) -> np.ndarray:
    """Normalised vertices (N, 3) of the object mesh written for ``channel``."""
    entry = next(o for o in index["objects"] if o["id"] == channel)
    return normalise(np.asarray(trimesh.load(out_dir / entry["file"], process=False).vertices))


def test_unseen_copies_of_a_neighbours_surface_are_left_out(tiny_run, tmp_path):
    """Channel 3 wraps the bed a fraction of a voxel outside it, up to half the bed's height (the
    bed's top still shows, so the bed is a neighbour): where the cameras saw the wrap (above the bed's
    centre) it is the visible surface and stays; the unseen rest is a copy and is dropped."""

    def wrap(points, bed, radius, step):
        outside = (points - bed).norm(dim=-1) - (radius + 0.3 * step)
        return torch.maximum(outside, points[:, 2] - (float(bed[2]) + 0.5 * radius))

    trained, above, bed, radius, step, normalise = _bed_and_channel_3(tiny_run, wrap)
    trained.method.votes.votes[3, 20] = 3.0
    index = extract_meshes(trained, tmp_path / "meshes", resolution=64, observer=above)
    vertices = _object_vertices(tmp_path / "meshes", index, 3, normalise)
    assert vertices[:, 2].min() > float(bed[2]) - 2 * step  # the seen part only
    assert vertices[:, 2].max() > float(bed[2]) + 0.4 * radius


def test_a_duplicate_hidden_inside_an_object_does_not_make_its_unseen_side_a_copy(tiny_run, tmp_path):
    """Channel 3 duplicates the bed a fraction of a voxel inside it, so it owns none of the scene's
    surface (trained runs hold such duplicates): the bed's unseen lower half is not a copy of it and
    stays."""
    duplicate = lambda points, bed, radius, step: (points - bed).norm(dim=-1) - (radius - 0.3 * step)  # noqa: E731
    trained, above, bed, radius, _, normalise = _bed_and_channel_3(tiny_run, duplicate)
    index = extract_meshes(trained, tmp_path / "meshes", resolution=64, observer=above)
    assert [o["id"] for o in index["objects"]] == [1, 2]  # the hidden duplicate gets no mesh
    vertices = _object_vertices(tmp_path / "meshes", index, 2, normalise)
    assert vertices[:, 2].min() < float(bed[2]) - 0.9 * radius  # the unseen bottom is there


def test_two_channels_holding_one_object_are_meshed_as_one(tiny_run, tmp_path):
    """Channel 3 holds the bed too, shifted half a voxel: the two surfaces cross, each channel is the
    scene minimum on half of it, and meshed apart both would be half a bed. Of one class, they are
    one object; the chair, given the bed's class too, stays an object of its own."""
    shifted = lambda points, bed, radius, step: (points - bed - torch.tensor([0.5 * step, 0.0, 0.0])).norm(dim=-1) - radius  # noqa: E731
    trained, _, bed, radius, step, normalise = _bed_and_channel_3(tiny_run, shifted)
    votes = trained.method.votes.votes
    votes[3] = votes[2]
    votes[1] = votes[2]
    index = extract_meshes(trained, tmp_path / "meshes", resolution=64, observer=None)
    groups = sorted(sorted(o["channels"]) for o in index["objects"])
    assert groups == [[1], [2, 3]]
    entry = next(o for o in index["objects"] if o["channels"] == [2, 3] or o["channels"] == [3, 2])
    vertices = _object_vertices(tmp_path / "meshes", index, entry["id"], normalise)
    span = vertices[:, 0].max() - vertices[:, 0].min()
    assert span > 1.9 * radius  # the whole bed, not half of it
    ids = object_map(trained.model, trained.method.votes.classes().numpy(), resolution=64).ids  # and labelled as one at render time
    assert ids[2] == ids[3] == entry["id"] and ids[1] == 1


def test_a_patch_of_an_object_owned_by_another_channel_is_labelled_that_object(tiny_run):
    """Channel 3 holds the bed shifted 0.6 voxel along x and shrunk 0.3 voxel, so it owns a cap of
    the bed's surface, and a small ball of its own elsewhere: not a duplicate as a whole (its ball
    lies on no other surface), but its cap is a patch of the bed, labelled the bed; its ball stays
    channel 3, and a chair of the bed's class next to nothing of channel 3 stays the chair."""
    ball = torch.tensor([0.25, 0.3, 0.0])

    def cap_and_ball(points, bed, radius, step):
        cap = (points - bed - torch.tensor([0.6 * step, 0.0, 0.0])).norm(dim=-1) - (radius - 0.3 * step)
        return torch.minimum(cap, (points - ball).norm(dim=-1) - 0.03)

    trained, _, bed, radius, step, _ = _bed_and_channel_3(tiny_run, cap_and_ball)
    votes = trained.method.votes.votes
    votes[3] = votes[2]
    votes[1] = votes[2]
    objects = object_map(trained.model, trained.method.votes.classes().numpy(), resolution=64)
    assert objects.ids[3] == 3 and objects.patches is not None  # no duplicate as a whole
    points = torch.stack([bed + torch.tensor([radius + 0.3 * step, 0.0, 0.0]), ball + torch.tensor([0.0, 0.0, 0.03])]).numpy()
    assert objects.at(np.array([3, 3]), points).tolist() == [2, 3]  # the cap is the bed's, the ball channel 3's
    chair = (np.array([-0.25, 0.15, 0.12]))[None]
    assert objects.at(np.array([1]), chair).tolist() == [1]


@pytest.mark.parametrize("resolution", [64, 97])
def test_the_scene_grid_evaluated_near_the_surface_equals_the_dense_grid(tiny_run, resolution):
    """The coarse-to-fine scene grid evaluates the field only near the zero level, yet its surface
    band, values and owners there, and the sign everywhere (so its marching-cubes surface) are
    those of evaluating every vertex, the small satellite sphere included."""
    from clusteringsdf.inference.channels import SURFACE_BAND, scene_grid

    trained, _, _ = _analytic_run(tiny_run)
    field = trained.model.field
    analytic, evaluated = field.geometry, []
    field.geometry = lambda points, with_jacobian=False: evaluated.append(len(points)) or analytic(points)
    grid, values, owner = scene_grid(trained.model, resolution, chunk=4096)
    dense = analytic(torch.as_tensor(grid.points((0, 0, 0), grid.shape), dtype=torch.float32)).sdf
    dense_values, dense_owner = (v.numpy().reshape(grid.shape) for v in dense.min(dim=-1))
    band = np.abs(dense_values) < SURFACE_BAND * grid.step
    assert np.array_equal(np.abs(values) < SURFACE_BAND * grid.step, band)
    assert np.array_equal(values[band], dense_values[band]) and np.array_equal(owner[band], dense_owner[band])
    assert np.array_equal(np.sign(values), np.sign(dense_values))
    assert sum(evaluated) < (0.8 if resolution < 90 else 0.6) * values.size


def test_an_object_no_camera_saw_is_not_written(tiny_run, tmp_path):
    trained, centres, _ = _analytic_run(tiny_run)
    normalise = trained.scene.normalization.apply
    near_chair = lambda world: np.linalg.norm(normalise(world) - centres[1].numpy(), axis=1) < 0.2  # noqa: E731
    index = extract_meshes(trained, tmp_path / "meshes", resolution=48, observer=SeenWhere(near_chair))
    assert [o["id"] for o in index["objects"]] == [1]  # the bed, never seen, is left out


def _first_hit(origins: torch.Tensor, directions: torch.Tensor, spheres: list[tuple[torch.Tensor, float, bool]]) -> torch.Tensor:
    """Distance (R,) to the first sphere surface along unit rays; (centre, radius, seen from inside)."""
    hits = []
    for centre, radius, inside in spheres:
        oc = origins - centre
        b = (oc * directions).sum(-1)
        disc = b**2 - ((oc * oc).sum(-1) - radius**2)
        root = torch.sqrt(disc.clamp_min(0))
        t = -b + root if inside else -b - root
        hits.append(torch.where((disc > 0) & (t > 0), t, torch.full_like(t, float("inf"))))
    return torch.stack(hits).min(0).values


def test_surface_rendering_finds_the_first_surface_of_an_analytic_field(tiny_run):
    """Model.render (trajectories, viewer) puts each ray on its first surface: the analytic spheres'
    ray intersections, within a thousandth of the room's radius."""
    from clusteringsdf.inference.render import camera_rays

    trained, centres, radii = _analytic_run(tiny_run)
    model, scene = trained.model, trained.scene
    model.refresh_volume()
    frame = int(scene.split("test")[0])
    pose = torch.as_tensor(scene.poses[frame], dtype=torch.float32)
    rays = camera_rays(pose, torch.as_tensor(scene.intrinsics[frame], dtype=torch.float32), scene.hw, model.bbox, near=trained.config.sampler.near)
    with torch.no_grad():
        out = model.render(rays, trained.method.render_request(False))  # the analytic field has no Jacobian
    spheres = [(torch.zeros(3), 0.7, True), (centres[1], float(radii[1]), False), (centres[2], float(radii[2]), False),
               (torch.tensor([-0.25, 0.15, 0.2]), 0.02, False)]
    expected = _first_hit(rays.origins, rays.directions, spheres)
    inside = expected < rays.far  # the hit lies in the box
    distance = out.depth / rays.dz
    assert inside.float().mean() > 0.5
    assert ((distance - expected).abs()[inside] < 1e-3).float().mean() > 0.99


def test_glb_has_one_named_node_per_object_and_watertight_meshes_are_watertight(tiny_run, tmp_path):
    trained, _, _ = _analytic_run(tiny_run)
    index = extract_meshes(trained, tmp_path / "meshes", resolution=48, watertight=True, observer=None)
    scene = trimesh.load(tmp_path / "meshes" / "scene.glb")
    names = set(scene.graph.nodes_geometry)
    assert {"01_chair", "02_bed"} <= names and "background" in names
    for entry in index["objects"]:
        mesh = trimesh.load(tmp_path / "meshes" / entry["file"], process=False)
        mesh.merge_vertices()
        assert mesh.is_watertight, entry["file"]


def test_mesh_command_rejects_bad_object_list(tiny_run, capsys):
    assert main(["mesh", "--run", str(tiny_run), "--objects", "1,x"]) == 2
    assert "--objects" in capsys.readouterr().err


def test_surface_distances_by_hand():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    close = gt + [0.0, 0.03, 0.0]
    scores = surface_distances(close, gt, threshold=0.05)
    assert scores["chamfer_l1"] == pytest.approx(0.03) and scores["fscore"] == 1.0
    far = gt + [0.0, 0.1, 0.0]
    assert surface_distances(far, gt, threshold=0.05)["fscore"] == 0.0
    # half the prediction is right: precision 0.5, recall 1 -> F = 2/3
    half = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0], [6.0, 0, 0]])
    assert surface_distances(half, gt, threshold=0.05)["fscore"] == pytest.approx(2 / 3)


def test_ground_truth_mesh_scores_perfectly_against_itself(tiny_scene, tmp_path):
    """A mesh folder made of the GT mesh and its instances: scene F-score 1, every object matched."""
    gt = read_labelled_mesh(tiny_scene / "gt_mesh.ply")
    faces, instance = gt.faces, gt.instance
    colors = np.zeros((len(gt.vertices), 3), np.uint8)
    out = tmp_path / "meshes"
    write_mesh(out / "scene_instance.ply", gt.vertices, faces, colors)
    objects = []
    for gt_id in np.unique(instance[instance > 0]):
        write_mesh(out / "objects" / f"{gt_id}.ply", gt.vertices, faces[instance == gt_id], colors)
        objects.append({"id": int(gt_id) + 100, "thing": True, "file": f"objects/{gt_id}.ply"})
    (out / "index.json").write_text(json.dumps({"objects": objects}))
    scores = evaluate_meshes(tiny_scene, out)
    assert scores["scene"]["fscore"] > 0.99
    assert scores["scene"]["chamfer_l1"] < 0.01
    assert scores["objects"]["matched"] == scores["objects"]["gt_instances"] == len(objects)
    assert scores["objects"]["mean_fscore"] > 0.99
    assert all(m["object"] == m["gt_instance"] + 100 for m in scores["objects"]["matches"])


def test_eval_without_gt_mesh_is_a_clear_error(tiny_scene, tmp_path, capsys):
    (tiny_scene / "gt_mesh.ply").unlink()
    assert main(["eval", "--scene", str(tiny_scene), "--mesh", str(tmp_path)]) == 2
    assert "gt_mesh.ply" in capsys.readouterr().err


def test_trajectories_are_rigid_cameras_looking_into_the_scene():
    rng = np.random.default_rng(0)
    poses = np.repeat(np.eye(4)[None], 10, axis=0)
    poses[:, :3, 3] = rng.uniform(-0.3, 0.3, (10, 3))
    bbox = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    for kind in ("orbit", "spiral", "train"):
        path = trajectory_poses(poses, bbox, kind, 12)
        assert path.shape == (12, 4, 4)
        rotations = path[:, :3, :3]
        assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-6)
        assert np.allclose(np.linalg.det(rotations), 1.0, atol=1e-6)
        assert np.all(np.abs(path[:, :3, 3]) <= 1.0)
    orbit = trajectory_poses(poses, bbox, "orbit", 12)
    assert len(np.unique(np.round(orbit[:, :3, 3], 6), axis=0)) == 12


def test_render_trajectory_writes_frames_and_a_video(tiny_run, tmp_path):
    trained = load_trained_run(tiny_run, CPU)
    summary = render_trajectory(trained, "spiral", 3, tmp_path / "traj", video=True, progress=False)
    frames = sorted((tmp_path / "traj" / "frames").glob("*.png"))
    assert len(frames) == summary["frames"] == 3
    assert summary["frame_size"] == list(trained.scene.hw)
    assert summary["render_seconds"] > 0
    assert summary["frames_per_second"] == pytest.approx(3 / summary["render_seconds"], rel=0.02)  # both rounded
    video = Path(summary["video"])
    assert video.is_file() and video.stat().st_size > 0


def test_eval_every_renders_the_frames_the_scorer_takes(tiny_run, tmp_path):
    from clusteringsdf.evaluation import evaluate_predictions
    from clusteringsdf.inference.evaluate_run import predict_split

    trained = load_trained_run(tiny_run, CPU)
    test = len(trained.scene.split("test"))
    predict_split(trained, "test", tmp_path / "pred", progress=False, normals=False, every=2)
    assert len(list((tmp_path / "pred" / "pred_instance").glob("*.png"))) == (test + 1) // 2
    assert evaluate_predictions(trained.scene.root, tmp_path / "pred", every=2)["frames"] == (test + 1) // 2
    from clusteringsdf.inference.report import view_pictures

    pictures = view_pictures(trained.scene, tmp_path / "pred", tmp_path / "report", 4)  # only rendered views
    assert len(pictures) == (test + 1) // 2


def test_render_frames_need_a_trajectory(tiny_run, capsys):
    assert main(["render", "--run", str(tiny_run), "--video"]) == 2
    assert "--trajectory" in capsys.readouterr().err


def test_render_rejects_a_bad_fragment_threshold(tiny_run, capsys):
    assert main(["render", "--run", str(tiny_run), "--min-segment-fraction", "1.5"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: clusteringsdf render ")
    assert lines[-1].startswith("clusteringsdf render: error: --min-segment-fraction")


def test_mesh_preview_culls_back_faces():
    """A box seen from above: its outward top face is drawn; the same box turned inside out
    (a room) shows its floor, not its top."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    colors = np.zeros((len(box.vertices), 3), np.uint8)
    colors[box.vertices[:, 2] > 0] = (255, 0, 0)  # top corners red
    colors[box.vertices[:, 2] < 0] = (0, 0, 255)  # bottom corners blue
    up = np.array([0.0, 0.0, 1.0])
    outside = preview_mesh(np.asarray(box.vertices), np.asarray(box.faces), colors, up, size=(60, 80), elevation_deg=89, azimuth_deg=0)
    inside = preview_mesh(np.asarray(box.vertices), np.asarray(box.faces)[:, ::-1], colors, up, size=(60, 80), elevation_deg=89, azimuth_deg=0)
    centre_out, centre_in = outside[30, 40].astype(int), inside[30, 40].astype(int)
    assert centre_out[0] > centre_out[2]  # red top
    assert centre_in[2] > centre_in[0]  # blue floor


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [value for name, value in attrs if name in ("src", "href") and value]


def test_report_page_parses_and_every_referenced_file_exists(tiny_run):
    page = build_report(tiny_run, CPU, mesh_resolution=32)
    parser = _Collector()
    parser.feed(page.read_text())
    parser.close()
    assert {"html", "table", "img"} <= set(parser.tags)
    assert parser.sources, "the report references its pictures"
    for source in parser.sources:
        assert not source.startswith(("http:", "https:")), "self-contained: no external resources"
        assert (page.parent / source).is_file(), source
    text = page.read_text()
    assert "raw machine labels" in text and "PQ" in text
    assert main(["report", "--run", str(tiny_run), "--baseline", str(tiny_run), "--quiet"]) == 0


def test_sphere_masked_mesh_stays_inside_the_sphere_union(tiny_scene_source, tmp_path):
    run = tmp_path / "spheres"
    assert main(["train", "--data", str(tiny_scene_source), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "30", "--spheres", "on", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["config"]["sampler"]["kind"] == "spheres"
    trained = load_trained_run(run, CPU)
    full = extract_meshes(trained, tmp_path / "full", resolution=64)
    # put the spheres on part of the extracted surface: the masked mesh must be non-empty and inside
    vertices = np.asarray(trimesh.load(tmp_path / "full" / "scene_instance.ply", process=False).vertices)
    normalised = torch.as_tensor(trained.scene.normalization.apply(vertices), dtype=torch.float32)
    cloud = trained.model.spheres
    half = normalised[normalised[:, 0] < normalised[:, 0].median()]
    pick = torch.randint(0, len(half), (cloud.centres.shape[0],), generator=torch.Generator().manual_seed(0))
    cloud.centres.data.copy_(half[pick])
    cloud.radius.fill_(0.1)
    masked = extract_meshes(trained, tmp_path / "masked", resolution=64, mask_spheres=True)
    assert 0 < masked["scene"]["faces"] < full["scene"]["faces"]
    inside = np.asarray(trimesh.load(tmp_path / "masked" / "scene_instance.ply", process=False).vertices)
    points = torch.as_tensor(trained.scene.normalization.apply(inside), dtype=torch.float32)
    distance = torch.cdist(points, cloud.centres.detach()).amin(dim=1)
    step = float((trained.model.bbox[1] - trained.model.bbox[0]).max()) / 63  # the mask is on grid vertices
    assert bool((distance <= cloud.r + step).all())
    assert float((distance <= cloud.r).float().mean()) > 0.99


def test_classes_absent_from_the_training_labels_are_never_predicted(tiny_run):
    from clusteringsdf.inference.render import render_view

    trained = load_trained_run(tiny_run, CPU)
    votes, scene = trained.method.votes, trained.scene
    seen = votes.observed_classes()
    assert seen.any() and not seen.all()
    votes.votes.zero_()
    votes.votes[1, 2] = 1.0  # as if class 2 were the only class in the labels
    frame = int(scene.split("test")[0])
    view = render_view(trained.model, trained.method, torch.as_tensor(scene.poses[frame]).float(), torch.as_tensor(scene.intrinsics[frame]).float(),
                       hw=(24, 32), chunk=4096, near=trained.config.sampler.near, stuff_classes=scene.classes.stuff_classes, normals=False)
    assert set(np.unique(view.semantic).tolist()) == {2}


def test_mesh_vertex_colours_come_from_the_colour_network(tiny_run, tmp_path):
    trained = load_trained_run(tiny_run, CPU)
    colour = torch.tensor([0.2, 0.6, 0.8])
    trained.model.field.color = lambda points, directions, normals, feature: colour.expand(points.shape[0], 3)
    extract_meshes(trained, tmp_path / "meshes", resolution=32)
    mesh = trimesh.load(tmp_path / "meshes" / "scene_color.ply", process=False)
    assert len(mesh.vertices) > 0
    assert (np.asarray(mesh.visual.vertex_colors)[:, :3] == np.round(colour.numpy() * 255)).all()


def test_view_direction_of_field_colours_looks_at_the_surface(tiny_run):
    """Outward normals: the colour network sees each vertex from outside, along -normal."""
    from clusteringsdf.inference.mesh import Surface, field_colors

    trained = load_trained_run(tiny_run, CPU)
    seen = []
    trained.model.field.color = lambda points, directions, normals, feature: seen.append(directions) or torch.zeros(points.shape[0], 3)
    surface = Surface(np.zeros((2, 3)), np.zeros((0, 3), dtype=int), np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]]))
    field_colors(trained.model, surface)
    assert torch.allclose(seen[0], torch.tensor([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]))


def test_gt_meshes_of_other_tools_per_face_per_vertex_quads_or_without_ids(tmp_path):
    """Replica's semantic mesh: quads with a per-face object_id; some exports: per-vertex ids;
    some: none (then the scene is scored alone, with a note)."""
    from plyfile import PlyData, PlyElement

    vertices = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0), (2, 1, 0)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    quads = np.array([([0, 1, 2, 3], 7), ([1, 4, 5, 2], 9)], dtype=[("vertex_indices", "i4", (4,)), ("object_id", "i4")])
    PlyData([PlyElement.describe(vertices, "vertex"), PlyElement.describe(quads, "face")]).write(str(tmp_path / "replica.ply"))
    mesh = read_labelled_mesh(tmp_path / "replica.ply")
    assert mesh.faces.shape == (4, 3) and sorted(mesh.instance.tolist()) == [7, 7, 9, 9] and "object_id" in mesh.instance_source
    for triangle, instance in zip(mesh.faces, mesh.instance):  # each triangle keeps its quad's id
        assert set(triangle) <= ({0, 1, 2, 3} if instance == 7 else {1, 4, 5, 2})
    per_vertex = np.array([(0, 0, 0, 3), (1, 0, 0, 3), (1, 1, 0, 3), (0, 1, 0, 5)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("instance_id", "i4")])
    triangles = np.array([([0, 1, 2],), ([0, 2, 3],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(per_vertex, "vertex"), PlyElement.describe(triangles, "face")]).write(str(tmp_path / "vertex.ply"))
    mesh = read_labelled_mesh(tmp_path / "vertex.ply")
    assert mesh.instance.tolist() == [3, 3] and "per-vertex" in mesh.instance_source  # (3, 3, 5): the majority
    plain = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(plain, "vertex"), PlyElement.describe(np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))]), "face")]).write(str(tmp_path / "plain.ply"))
    assert read_labelled_mesh(tmp_path / "plain.ply").instance is None


def test_a_gt_mesh_without_instance_ids_scores_the_scene_only(tiny_run, tiny_scene, tmp_path, capsys):
    gt = read_labelled_mesh(tiny_scene / "gt_mesh.ply")
    write_mesh(tiny_scene / "gt_mesh.ply", gt.vertices, gt.faces)  # no face properties
    trained = load_trained_run(tiny_run, CPU)
    extract_meshes(trained, tmp_path / "meshes", resolution=32)
    assert main(["eval", "--scene", str(tiny_scene), "--mesh", str(tmp_path / "meshes")]) == 0
    captured = capsys.readouterr()
    assert "no per-face or per-vertex instance ids" in captured.err and len(captured.err.strip().splitlines()) == 1
    result = json.loads(captured.out)["geometry"]
    assert "objects" not in result and result["scene"]["fscore"] is not None
