"""Depth of a separate depth camera reprojected into the colour camera (a box before a wall, seen by a
depth camera offset and turned against the colour camera), the z-buffer, the one-line errors of
unregistered depth, and grey (PGM) colour frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial.transform import Rotation

from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare.depth import DepthFrames, DepthRegistration, read_depth_intrinsics, read_rigid_transform, reproject_depth
from clusteringsdf.prepare.frames import stage_images

K_COLOR = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])  # 64x48
K_DEPTH = np.array([[50.0, 0.0, 23.5], [0.0, 50.0, 17.5], [0.0, 0.0, 1.0]])  # 48x36, narrower: each depth pixel covers 1.2 colour pixels
# planes z = const in the colour camera's frame (x0, x1, y0, y1, z): a box face before a wall
PLANES = [(-0.25, 0.15, -0.2, 0.2, 1.0), (-10.0, 10.0, -10.0, 10.0, 3.0)]


def _depth_to_color() -> np.ndarray:
    """The depth camera 15 cm to the right of the colour camera (and 1 cm lower), turned 3 degrees towards it."""
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_euler("y", -3.0, degrees=True).as_matrix()
    transform[:3, 3] = [0.15, 0.01, 0.0]
    return transform


def _raycast(k: np.ndarray, camera_to_color: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Depth along the camera's axis and the index of the plane hit, per pixel (0 / -1: nothing)."""
    v, u = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1)  # camera z = 1
    directions = rays @ camera_to_color[:3, :3].T
    origin = camera_to_color[:3, 3]
    depth, which = np.full(hw, np.inf), np.full(hw, -1)
    for index, (x0, x1, y0, y1, z) in enumerate(PLANES):
        s = (z - origin[2]) / directions[..., 2]
        x, y = origin[0] + s * directions[..., 0], origin[1] + s * directions[..., 1]
        hit = (s > 0) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & (s < depth)
        depth[hit], which[hit] = s[hit], index
    return np.where(np.isfinite(depth), depth, 0.0), which


def _seen_by_depth_camera(depth_to_color: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Colour pixels whose surface point the depth camera sees (in its image and not hidden)."""
    v, u = np.mgrid[0:48, 0:64].astype(np.float64)
    points = np.stack([(u - K_COLOR[0, 2]) / K_COLOR[0, 0] * truth, (v - K_COLOR[1, 2]) / K_COLOR[1, 1] * truth, truth], axis=-1)
    in_depth = (points - depth_to_color[:3, 3]) @ depth_to_color[:3, :3]  # colour -> depth camera frame
    ud = K_DEPTH[0, 0] * in_depth[..., 0] / in_depth[..., 2] + K_DEPTH[0, 2]
    vd = K_DEPTH[1, 1] * in_depth[..., 1] / in_depth[..., 2] + K_DEPTH[1, 2]
    inside = (ud > -0.5) & (ud < 47.5) & (vd > -0.5) & (vd < 35.5)
    # hidden: the segment from the depth camera to the point crosses the box face (z = 1) first
    centre = depth_to_color[:3, 3]
    s = (1.0 - centre[2]) / (points[..., 2] - centre[2])
    cross = centre[:2] + s[..., None] * (points[..., :2] - centre[:2])
    x0, x1, y0, y1, _ = PLANES[0]
    hidden = (truth > 1.0 + 1e-6) & (cross[..., 0] >= x0) & (cross[..., 0] <= x1) & (cross[..., 1] >= y0) & (cross[..., 1] <= y1)
    return inside & ~hidden


def test_reprojected_depth_is_the_colour_cameras_depth_with_holes_where_nothing_lands():
    transform = _depth_to_color()
    sensor, _ = _raycast(K_DEPTH, transform, (36, 48))
    truth, surface = _raycast(K_COLOR, np.eye(4), (48, 64))
    out = reproject_depth(sensor, K_DEPTH, transform, K_COLOR, hw=(48, 64))
    seen = _seen_by_depth_camera(transform, truth)
    # pixels 2 away from any edge (of the box, of the depth camera's view, of the box's shadow): at edges a depth
    # pixel's footprint may spill over by one colour pixel
    steady_seen = ndimage.binary_erosion(seen & (surface == 0), iterations=2) | ndimage.binary_erosion(seen & (surface == 1), iterations=2)
    steady_unseen = ndimage.binary_erosion(~seen, iterations=2, border_value=1)
    assert steady_seen.sum() > 1500 and steady_unseen.sum() > 100  # strips outside the depth camera's view
    assert np.all(out[steady_seen] > 0)
    assert np.allclose(out[steady_seen], truth[steady_seen], rtol=1e-6)
    assert np.all(out[steady_unseen] == 0)
    # the shadow of the box on the wall (visible to the colour camera, hidden from the depth camera) is a hole
    shadow = (surface == 1) & ~seen & (np.abs(np.mgrid[0:48, 0:64][1] - 31.5) < 25)
    assert shadow.sum() > 20 and np.all(out[ndimage.binary_erosion(shadow)] == 0)


def test_z_buffer_keeps_the_nearer_surface():
    # two depth pixels land on one colour pixel (a depth camera with 100x the focal length)
    k_depth = np.array([[100.0, 0.0, 0.5], [0.0, 100.0, 0.0], [0.0, 0.0, 1.0]])
    k_color = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    for values in ([2.0, 1.0], [1.0, 2.0]):
        out = reproject_depth(np.array([values], dtype=np.float32), k_depth, np.eye(4), k_color, hw=(3, 3))
        assert out[1, 1] == 1.0 and np.count_nonzero(out) == 1


def test_depth_intrinsics_and_transform_files(tmp_path):
    assert np.allclose(read_depth_intrinsics("50,50,23.5,17.5"), K_DEPTH)
    (tmp_path / "k.txt").write_text("50 0 23.5\n0 50 17.5\n0 0 1\n")
    assert np.allclose(read_depth_intrinsics(tmp_path / "k.txt"), K_DEPTH)
    transform = _depth_to_color()
    np.savetxt(tmp_path / "t.txt", transform)
    assert np.allclose(read_rigid_transform(tmp_path / "t.txt"), transform)
    assert np.allclose(read_rigid_transform(tmp_path / "t.txt", invert=True) @ transform, np.eye(4), atol=1e-9)


def test_frames_reproject_and_registered_depth_still_resizes(tmp_path):
    transform = _depth_to_color()
    sensor, _ = _raycast(K_DEPTH, transform, (36, 48))
    (tmp_path / "d").mkdir()
    Image.fromarray(np.round(sensor * 1000).astype(np.uint16)).save(tmp_path / "d" / "f0.png")
    registration = DepthRegistration(K_COLOR, transform, K_DEPTH)
    reprojected = DepthFrames(tmp_path / "d", ["f0"], (48, 64), registration=registration).read("f0")
    assert np.array_equal(reprojected, reproject_depth(np.round(sensor * 1000).astype(np.float32) / 1000, K_DEPTH, transform, K_COLOR, hw=(48, 64)))
    resized = DepthFrames(tmp_path / "d", ["f0"], (72, 96)).read("f0")  # same aspect ratio, no registration: nearest resize
    assert resized.shape == (72, 96) and resized[0, 0] == pytest.approx(sensor[0, 0], abs=1e-3)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=3, width=64, height=48, textured=False)


def _prepare(capsys, *args: str) -> tuple[int, str]:
    code = main(["prepare", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


def test_unregistered_depth_errors_are_one_line(capture, tmp_path, capsys):
    base = ["--images", str(capture.root / "color"), "--poses", "scannet", "--poses-path", str(capture.root),
            "--intrinsics", str(capture.root / layout.INTRINSICS_FILE)]
    small = tmp_path / "small"
    small.mkdir()
    for name in capture.names:
        Image.fromarray(np.full((36, 48), 1500, dtype=np.uint16)).save(small / f"{name}.png")
    np.savetxt(tmp_path / "t.txt", _depth_to_color())
    code, err = _prepare(capsys, *base, "--out", str(tmp_path / "a"), "--depth", str(small), "--depth-to-color", str(tmp_path / "t.txt"))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "depth is 48x36 but the colour frames are 64x48" in err and "--depth-intrinsics" in err and f"{capture.names[0]}.png" in err

    sheared = _depth_to_color()
    sheared[0, 1] += 0.05
    np.savetxt(tmp_path / "bad.txt", sheared)
    code, err = _prepare(capsys, *base, "--out", str(tmp_path / "b"), "--depth", str(small), "--depth-intrinsics", "50,50,23.5,17.5",
                         "--depth-to-color", str(tmp_path / "bad.txt"))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "bad.txt: not a rigid transform: the rotation is not orthonormal" in err

    lifted = _depth_to_color()
    lifted[3] = [0.0, 0.0, 0.1, 1.0]
    np.savetxt(tmp_path / "row.txt", lifted)
    code, err = _prepare(capsys, *base, "--out", str(tmp_path / "c"), "--depth", str(small), "--depth-intrinsics", "50,50,23.5,17.5",
                         "--color-to-depth", str(tmp_path / "row.txt"))
    assert code == 2 and len(err.splitlines()) == 1 and "row.txt: not a rigid transform: the last row must be 0 0 0 1" in err, err
    assert not any((tmp_path / name).exists() for name in "abc") and not list(tmp_path.glob(".*.prepare-*"))


def test_prepare_reprojects_sensor_depth(capture, tmp_path, capsys):
    transform = _depth_to_color()
    folder = tmp_path / "sensor"
    folder.mkdir()
    sensor, _ = _raycast(K_DEPTH, transform, (36, 48))
    for name in capture.names:
        Image.fromarray(np.round(sensor * 1000).astype(np.uint16)).save(folder / f"{name}.png")
    np.savetxt(tmp_path / "color_to_depth.txt", np.linalg.inv(transform))  # the other direction (ViSP's depth_M_color)
    (tmp_path / "k.txt").write_text("60 0 31.5\n0 60 23.5\n0 0 1\n")
    out = tmp_path / "scene"
    code, err = _prepare(capsys, "--images", str(capture.root / "color"), "--poses", "scannet", "--poses-path", str(capture.root),
                         "--out", str(out), "--depth", str(folder), "--intrinsics", str(tmp_path / "k.txt"),
                         "--depth-intrinsics", "50,50,23.5,17.5", "--color-to-depth", str(tmp_path / "color_to_depth.txt"))
    assert code == 0, err
    written = layout.read_depth(out / "depth" / f"{capture.names[0]}.png")
    expected = reproject_depth(np.round(sensor * 1000).astype(np.float32) / 1000, K_DEPTH, transform, K_COLOR, hw=(48, 64))
    assert np.allclose(written, expected, atol=1e-3)


def test_grey_and_pgm_frames_become_rgb(capture, tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    grey = [np.asarray(Image.open(capture.root / "color" / f"{n}.png").convert("L")) for n in capture.names]
    Image.fromarray(grey[0]).save(folder / "a.pgm")
    Image.fromarray(grey[1].astype(np.uint16) * 257).save(folder / "b.png")  # 16-bit grey
    Image.fromarray(grey[2]).save(folder / "c.png")
    staged = stage_images(folder, tmp_path / "frames", log=lambda m: None)
    assert staged.names == ["a", "b", "c"]
    for name, expected in zip(staged.names, grey):
        rgb = np.asarray(Image.open(staged.path(name)))
        assert rgb.shape == (48, 64, 3) and np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
