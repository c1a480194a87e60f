"""A real RGB-D capture through `prepare` and a short training: six frames (every 5th) of ViSP's castle
(an Intel SR300 at 0.2-0.4 m, from Debian's `visp-images-data`, read where apt installs it), grey PGM
frames downscaled to 160x120, the depth camera's 640x480 maps reprojected into the colour camera.

Checked, each tolerance about twice what was measured (measured in brackets):

* RGB-D tracking poses all six frames, and each frame's depth lands on the next one's under the
  poses (median residual 0.5-0.9 mm, tolerance 2 mm; 92-100% of the pixels within 1 cm, tolerance
  85%) although the camera turns up to 5.4 degrees and moves up to 23 mm between them.
* The poses against an independent reference: the castle's CAD model (tower, front door and slope,
  ViSP's `.cao` files), placed by ViSP's pose of the first frame and carried to every frame by the
  tracked poses, lies on that frame's sensor depth: median |CAD - sensor| 3.0-4.4 mm in every frame,
  as in the first (tolerance 8 mm; the last frame with the first frame's pose instead: 12.5 mm).
* The tiny preset, 200 steps, renders the two held-out frames' depth within AbsRel 0.044 of the
  sensor depth (0.045 and 0.043; tolerance 0.08).

Skipped only when the data package is not installed.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clusteringsdf
from clusteringsdf.cli import main
from clusteringsdf.data import layout

CASTEL = Path("/usr/share/visp-images-data/ViSP-images/mbt-depth/castel")
DEPTH_UNIT_M = 0.000124986647  # metres per raw unit of the .bin depth maps
FRAMES = [0, 5, 10, 15, 20, 25]
WIDTH = 160
CAD_PARTS = ("chateau_tower", "chateau_front_door", "chateau_slope")  # convex faces (the floor's is not)

pytestmark = pytest.mark.skipif(not CASTEL.is_dir(), reason="visp-images-data is not installed (apt-get install visp-images-data)")


def _camera(path: Path, scale: float = 1.0) -> np.ndarray:
    """K of a ViSP camera XML, for images resized by ``scale`` (pixel centres at integers)."""
    camera = ElementTree.parse(path).getroot().find(".//camera")
    fx, fy, cx, cy = (float(camera.find(tag).text) for tag in ("px", "py", "u0", "v0"))
    return np.array([[fx * scale, 0.0, (cx + 0.5) * scale - 0.5], [0.0, fy * scale, (cy + 0.5) * scale - 0.5], [0.0, 0.0, 1.0]])


def _depth_bin(path: Path) -> np.ndarray:
    """ViSP's depth .bin: little-endian uint32 height and width, then uint16 values."""
    data = path.read_bytes()
    height, width = (int(v) for v in np.frombuffer(data[:8], "<u4"))
    return np.frombuffer(data[8:], "<u2", count=height * width).reshape(height, width)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    capture = tmp_path_factory.mktemp("castel")
    (capture / "images").mkdir()
    (capture / "depth").mkdir()
    for i in FRAMES:
        shutil.copyfile(CASTEL / "castel" / f"image_{i:04d}.pgm", capture / "images" / f"image_{i:04d}.pgm")
        Image.fromarray(_depth_bin(CASTEL / "castel" / f"depth_image_{i:04d}.bin")).save(capture / "depth" / f"image_{i:04d}.png")
    np.savetxt(capture / "K.txt", _camera(CASTEL / "chateau.xml", WIDTH / 640))
    np.savetxt(capture / "K_depth.txt", _camera(CASTEL / "chateau_depth.xml"))
    out = capture / "scene"
    code = main(["prepare", "--images", str(capture / "images"), "--out", str(out), "--depth", str(capture / "depth"),
                 "--depth-scale", str(1.0 / DEPTH_UNIT_M), "--intrinsics", str(capture / "K.txt"),
                 "--depth-intrinsics", str(capture / "K_depth.txt"), "--color-to-depth", str(CASTEL / "depth_M_color.txt"),
                 "--poses", "rgbd", "--max-size", str(WIDTH), "--test-every", "3", "--quiet"])
    assert code == 0
    return out


def _frames(scene: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    names = [f"image_{i:04d}" for i in FRAMES]
    poses = np.stack([layout.read_pose(scene / "pose" / f"{n}.txt") for n in names])
    depths = np.stack([layout.read_depth(scene / "depth" / f"{n}.png") for n in names])
    return names, poses, layout.read_intrinsics(scene / layout.INTRINSICS_FILE), depths


def _project(points: np.ndarray, k: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat pixel index, depth and in-view mask of camera-frame points (N, 3)."""
    z = points[:, 2]
    safe = np.where(z > 1e-6, z, 1.0)
    u = np.rint(k[0, 0] * points[:, 0] / safe + k[0, 2]).astype(int)
    v = np.rint(k[1, 1] * points[:, 1] / safe + k[1, 2]).astype(int)
    inside = (z > 1e-6) & (u >= 0) & (u < hw[1]) & (v >= 0) & (v < hw[0])
    return np.where(inside, v * hw[1] + u, 0), z, inside


def test_rgbd_tracking_poses_every_frame_and_consecutive_depths_agree(scene):
    report = json.loads((scene / "prepare.json").read_text())
    assert report["poses"]["source"] == "rgbd" and report["poses"]["metric"] and report["poses"]["registered"] == len(FRAMES)
    names, poses, k, depths = _frames(scene)
    assert len(list((scene / "pose").glob("*.txt"))) == len(FRAMES)
    for i in range(len(names) - 1):
        a, b = depths[i], depths[i + 1]
        v, u = np.nonzero(a > 0)
        z = a[v, u]
        points = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
        b_from_a = np.linalg.inv(poses[i + 1]) @ poses[i]
        pixel, zb, inside = _project(points @ b_from_a[:3, :3].T + b_from_a[:3, 3], k, a.shape)
        measured = np.where(inside, b.reshape(-1)[pixel], 0.0)
        residual = np.abs(measured - zb)[measured > 0]
        assert np.median(residual) < 0.002, (names[i], np.median(residual))
        assert (residual < 0.01).mean() > 0.85, (names[i], (residual < 0.01).mean())


def _cad_points(seed: int = 0) -> np.ndarray:
    """Points on the CAD parts' faces (object frame, metres): fan triangles sampled by area."""
    triangles = []
    for part in CAD_PARTS:
        lines = [line.split("#", 1)[0].split() for line in (CASTEL / "chateau_parts" / f"{part}.cao").read_text().splitlines()]
        lines = [line for line in lines if line][1:]  # after "V1"
        count = int(lines[0][0])
        points = np.array([[float(x) for x in line[:3]] for line in lines[1 : 1 + count]])
        position = 1 + count
        for _ in range(2):  # segments, face segments
            position += 1 + int(lines[position][0])
        for line in lines[position + 1 : position + 1 + int(lines[position][0])]:
            corners = points[[int(x) for x in line[1 : 1 + int(line[0])]]]
            triangles += [(corners[0], corners[j], corners[j + 1]) for j in range(1, len(corners) - 1)]
    triangles = np.array(triangles)
    area = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(triangles), size=200_000, p=area / area.sum())
    s, t = rng.random((2, len(pick)))
    flip = s + t > 1
    s[flip], t[flip] = 1 - s[flip], 1 - t[flip]
    corner = triangles[pick]
    return corner[:, 0] + s[:, None] * (corner[:, 1] - corner[:, 0]) + t[:, None] * (corner[:, 2] - corner[:, 0])


def _cad_vs_sensor(points_object: np.ndarray, camera_from_object: np.ndarray, k: np.ndarray, depth: np.ndarray) -> float:
    """Median |sensor - CAD| (m) over the pixels where the z-buffered CAD points and the sensor both have depth."""
    pixel, z, inside = _project(points_object @ camera_from_object[:3, :3].T + camera_from_object[:3, 3], k, depth.shape)
    nearest = np.full(depth.size, np.inf)
    np.minimum.at(nearest, pixel[inside], z[inside])
    both = np.isfinite(nearest) & (depth.reshape(-1) > 0)
    return float(np.median(np.abs(depth.reshape(-1) - nearest)[both]))


def test_poses_carry_the_cad_model_onto_every_frames_sensor_depth(scene):
    names, poses, k, depths = _frames(scene)
    values = [float(x) for x in (CASTEL / "chateau.0.pos").read_text().split()[:6]]
    from scipy.spatial.transform import Rotation

    first_from_object = np.eye(4)  # ViSP's pose of the CAD model in the first frame's colour camera
    first_from_object[:3, :3] = Rotation.from_rotvec(values[3:]).as_matrix()
    first_from_object[:3, 3] = values[:3]
    world_from_object = poses[0] @ first_from_object
    points = _cad_points()
    errors = {name: _cad_vs_sensor(points, np.linalg.inv(pose) @ world_from_object, k, depth) for name, pose, depth in zip(names, poses, depths)}
    assert all(error < 0.008 for error in errors.values()), errors
    # the check can tell: the last frame with the first frame's pose is off by more than the tolerance
    assert _cad_vs_sensor(points, first_from_object, k, depths[-1]) > 0.010


def test_short_training_renders_the_held_out_depth(scene, tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--data", str(scene), "--out", str(run), "--preset", "tiny", "--iters", "200", "--seed", "0", "--device", "cpu",
                 "--set", "train.checkpoint_every=1000", "--set", "inference.object_grid=0", "--quiet"])
    assert code == 0
    test = layout.read_splits(scene / layout.SPLITS_FILE)["test"]
    assert test == ["image_0000", "image_0015"]
    names, poses, k, depths = _frames(scene)
    trained = clusteringsdf.load_run(run, device="cpu")
    half = k.copy()  # every 2nd pixel of the 160x120 frames: pixel j of the 80x60 grid is pixel 2j
    half[:2] /= 2.0
    total, count = 0.0, 0
    for name in test:
        sensor = depths[names.index(name)][::2, ::2]
        rendered = trained.render(half, poses[names.index(name)], sensor.shape).depth
        valid = sensor > 0
        assert valid.mean() > 0.6
        total += float(np.sum(np.abs(rendered[valid] - sensor[valid]) / sensor[valid]))
        count += int(valid.sum())
    assert total / count < 0.08, total / count
