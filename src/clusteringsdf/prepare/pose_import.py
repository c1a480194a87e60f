"""Poses the user already has: a COLMAP sparse model, a ``transforms.json`` (instant-ngp /
nerfstudio) or a ScanNet-style folder (``pose/<f>.txt`` + ``intrinsic/intrinsic_color.txt``).

Frames are matched by file stem. Frames without a pose are listed as unregistered; a pose file
holding non-finite values (ScanNet marks lost tracking with ``-inf``) counts as no pose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data import layout
from ..errors import DataError
from .cameras import PoseResult, colmap_to_layout_k
from .colmap import ColmapCamera, ColmapModel, read_colmap_model, undistortion

__all__ = ["import_colmap", "import_scannet", "import_transforms", "poses_from_colmap_model"]

# OpenGL / Blender camera axes (x right, y up, z backward) -> OpenCV (x right, y down, z forward)
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _check_size(camera_hw: tuple[int, int], hw: tuple[int, int], path: Path) -> None:
    if tuple(camera_hw) != tuple(hw):
        raise DataError(path, f"camera is {camera_hw[1]}x{camera_hw[0]} but the frames are {hw[1]}x{hw[0]}")


def poses_from_colmap_model(
    model: ColmapModel, names: list[str], hw: tuple[int, int], work_dir: Path, *, path: Path, source: str
) -> PoseResult:
    """Camera-to-world poses of the frames in ``model`` (matched by image-name stem), one undistorted
    pinhole camera; observations are kept on the result for scale estimation."""
    by_stem = {Path(name).stem: name for name in model.cam_from_world}
    used_cameras = {model.camera_of[by_stem[n]] for n in names if n in by_stem}
    if not used_cameras:
        raise DataError(path, f"no image of the model matches a frame name (model images: {', '.join(sorted(by_stem)[:3])}...)")
    cameras = {model.cameras[c] for c in used_cameras}
    if len(cameras) > 1:
        raise DataError(path, f"the frames use {len(cameras)} cameras with different intrinsics; the scene layout holds one camera")
    camera: ColmapCamera = cameras.pop()
    _check_size((camera.height, camera.width), hw, path)
    if camera.has_distortion:
        k, grid = undistortion(camera, work_dir)
    else:
        k, grid = _pinhole_k(camera), None
    poses, unregistered = {}, {}
    observations = {}
    for name in names:
        if name not in by_stem:
            unregistered[name] = "not registered by structure-from-motion" if source == "sfm" else "not in the COLMAP model"
            continue
        cam_from_world = np.eye(4)
        cam_from_world[:3] = model.cam_from_world[by_stem[name]]
        poses[name] = np.linalg.inv(cam_from_world)
        obs = model.observations[by_stem[name]].copy()
        obs[:, :2] -= 0.5  # COLMAP -> layout pixel convention
        observations[name] = obs
    result = PoseResult(poses, k, source, metric=False, unregistered=unregistered, undistort_map=grid, observations=observations)
    result.notes.append(f"camera {camera.model} {', '.join(f'{v:.4g}' for v in camera.params)}" + (" (undistorted to a pinhole camera)" if grid is not None else ""))
    return result


def _pinhole_k(camera: ColmapCamera) -> np.ndarray:
    p = camera.params
    if camera.model == "SIMPLE_PINHOLE":
        k = np.array([[p[0], 0, p[1]], [0, p[0], p[2]], [0, 0, 1.0]])
    else:
        k = np.array([[p[0], 0, p[2]], [0, p[1], p[3]], [0, 0, 1.0]])
    return colmap_to_layout_k(k)


def import_colmap(model_dir: Path, names: list[str], hw: tuple[int, int], work_dir: Path) -> PoseResult:
    """Poses from a COLMAP sparse model folder (binary or text), undistorted to a pinhole camera."""
    model = read_colmap_model(Path(model_dir), work_dir)
    return poses_from_colmap_model(model, names, hw, work_dir, path=Path(model_dir), source="colmap")


def import_transforms(path: Path, names: list[str], hw: tuple[int, int], work_dir: Path) -> PoseResult:
    """Poses from an instant-ngp / nerfstudio ``transforms.json`` (OpenGL camera axes, pixel centres at +0.5).

    Reads ``fl_x``/``fl_y`` (or ``camera_angle_x``), ``cx``/``cy`` (default: the image centre),
    ``w``/``h``, distortion ``k1 k2 p1 p2`` (``camera_model`` OPENCV) or ``k1..k4``
    (OPENCV_FISHEYE), and ``frames[].file_path`` + ``transform_matrix``; per-frame intrinsics must
    all be equal.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DataError(path, "must be a JSON object with a 'frames' list")

    def intrinsics_of(entry: dict, fallback: dict) -> tuple:
        merged = {**fallback, **entry}
        width, height = float(merged.get("w", hw[1])), float(merged.get("h", hw[0]))
        if "fl_x" in merged:
            fx = float(merged["fl_x"])
        elif "camera_angle_x" in merged:
            fx = 0.5 * width / np.tan(0.5 * float(merged["camera_angle_x"]))
        else:
            raise DataError(path, "no focal length: needs 'fl_x' or 'camera_angle_x'")
        fy = float(merged.get("fl_y", fx))
        cx, cy = float(merged.get("cx", width / 2.0)), float(merged.get("cy", height / 2.0))
        model = str(merged.get("camera_model", "OPENCV")).upper()
        if model == "OPENCV_FISHEYE":
            extra = tuple(float(merged.get(key, 0.0)) for key in ("k1", "k2", "k3", "k4"))
        else:
            model = "OPENCV"
            extra = tuple(float(merged.get(key, 0.0)) for key in ("k1", "k2", "p1", "p2"))
        return model, int(round(width)), int(round(height)), (fx, fy, cx, cy, *extra)

    try:
        cameras = set()
        poses, unregistered = {}, {}
        by_stem = {}
        for frame in data["frames"]:
            file_path = frame.get("file_path")
            if not isinstance(file_path, str):
                raise DataError(path, "a frame has no 'file_path'")
            by_stem[Path(file_path).stem] = frame
            cameras.add(intrinsics_of(frame, data))
    except (TypeError, ValueError) as exc:
        raise DataError(path, f"malformed intrinsics ({exc})") from None
    for name in names:
        frame = by_stem.get(name)
        if frame is None:
            unregistered[name] = "not in transforms.json"
            continue
        try:
            matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DataError(path, f"frame '{name}' has no numeric 4x4 'transform_matrix'") from None
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise DataError(path, f"frame '{name}': 'transform_matrix' must be a finite 4x4 matrix")
        poses[name] = _orthonormalised(matrix @ _GL_TO_CV, path, name)
    if not poses:
        raise DataError(path, f"no frame of transforms.json matches a frame name (first: {next(iter(by_stem), 'none')})")
    used = {intrinsics_of(by_stem[n], data) for n in poses}
    if len(used) > 1:
        raise DataError(path, f"the frames use {len(used)} different intrinsics; the scene layout holds one camera")
    model, width, height, params = used.pop()
    camera = ColmapCamera(model, width, height, tuple(params))
    _check_size((height, width), hw, path)
    if any(abs(v) > 0 for v in params[4:]) or model == "OPENCV_FISHEYE":
        k, grid = undistortion(camera, work_dir)
    else:
        fx, fy, cx, cy = params[:4]
        k, grid = colmap_to_layout_k(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])), None
    result = PoseResult(poses, k, "transforms", metric=False, unregistered=unregistered, undistort_map=grid)
    result.notes.append(f"camera {model} {', '.join(f'{v:.4g}' for v in params)} from {path}")
    return result


def _orthonormalised(pose: np.ndarray, path: Path, name: str) -> np.ndarray:
    """The pose with its rotation projected onto SO(3) (files often hold rounded or scaled rotations)."""
    rotation = pose[:3, :3]
    scale = np.cbrt(np.linalg.det(rotation))
    if not scale > 0:
        raise DataError(path, f"frame '{name}': rotation is singular or a reflection")
    u, _, vt = np.linalg.svd(rotation / scale)
    out = np.eye(4)
    out[:3, :3] = u @ vt
    out[:3, 3] = pose[:3, 3]
    if np.abs(out[:3, :3] - rotation / scale).max() > 0.05:
        raise DataError(path, f"frame '{name}': the rotation is not a rotation matrix")
    return out


def import_scannet(folder: Path, names: list[str], hw: tuple[int, int]) -> PoseResult:
    """Poses from ``folder/pose/<f>.txt`` (camera-to-world, OpenCV axes) and ``folder/intrinsic/intrinsic_color.txt``
    (4x4 or 3x3 K at the colour resolution, pixel centres at integer coordinates)."""
    folder = Path(folder)
    k_path = folder / layout.INTRINSICS_FILE
    k = layout.read_intrinsics(k_path)
    if not (0 < k[0, 2] < hw[1] and 0 < k[1, 2] < hw[0]):
        raise DataError(k_path, f"principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}) lies outside the {hw[1]}x{hw[0]} frames (intrinsics of another resolution?)")
    poses, unregistered = {}, {}
    for name in names:
        pose_path = folder / "pose" / f"{name}.txt"
        if not pose_path.is_file():
            unregistered[name] = "no pose file"
            continue
        matrix = layout.read_matrix(pose_path, "pose")
        if matrix.shape == (4, 4) and not np.all(np.isfinite(matrix)):
            unregistered[name] = "invalid pose (tracking lost)"
            continue
        poses[name] = layout.read_pose(pose_path)
    if not poses:
        raise DataError(folder / "pose", "no pose file matches a frame name")
    return PoseResult(poses, k, "scannet", metric=True, unregistered=unregistered)
