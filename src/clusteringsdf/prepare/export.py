"""A prepared scene for other tools: ``clusteringsdf export --scene SCENE --format nerfstudio|colmap``.

Both formats keep the scene's world frame and units (the poses of ``SCENE/pose``: metres when the
scene is metric) and its native resolution; the colour frames are copied unchanged into
``DIR/images``. The output is built in a temporary folder beside ``DIR`` and moved into place when
complete (:func:`clusteringsdf.files.staged_folder`).

``nerfstudio`` (``DIR/transforms.json``, nerfstudio's field names): one pinhole camera
(``camera_model`` "OPENCV" without distortion, ``fl_x fl_y cx cy w h``, pixel centres at +0.5 as
nerfstudio and COLMAP count them) and per frame ``file_path`` and ``transform_matrix``, the
camera-to-world pose in nerfstudio's OpenGL camera axes (x right, y up, z back: the scene's OpenCV
pose with its y and z axes flipped); ``depth_file_path`` (``depth/<f>.png``, 16-bit millimetres,
nerfstudio's default ``depth_unit_scale_factor``) when the scene has depth; ``instance_path``
(``masks/<f>.png``, 16-bit) the frame's instance ids from the machine labels (0 = none; ids are
not consistent across frames) when the scene has them; ``mask_path`` is not written: nerfstudio
reads it as a binary mask of valid pixels. ``train_filenames``, ``val_filenames`` and
``test_filenames`` hold the scene's split (val = test).

``colmap`` (``DIR/sparse/0``, COLMAP's binary model written by pycolmap, and ``DIR/images``): one
PINHOLE camera (COLMAP pixel convention), one image per frame with its world-to-camera pose, and
3D points back-projected from the depth maps on a pixel grid (about :data:`COLMAP_POINTS` in all,
each observed in the frame it came from, coloured by it); no points without depth.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import layout
from ..errors import ClusteringSDFError, DataError
from ..files import staged_folder
from .colmap import run_worker

__all__ = ["COLMAP_POINTS", "SCENE_FORMATS", "SceneCameras", "export_scene", "read_cameras"]

SCENE_FORMATS = ("nerfstudio", "colmap")
COLMAP_POINTS = 100_000  # points back-projected from depth for the COLMAP model, over all frames
GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL (nerfstudio) camera axes


@dataclass(frozen=True)
class SceneCameras:
    """The cameras of a scene folder at its native resolution.

    ``names`` (F,) frame names in the scene's order; ``images`` frame name -> colour image path;
    ``hw`` (H, W); ``k`` (3, 3) pinhole K with pixel centres at integer coordinates (the layout's
    convention); ``poses`` (F, 4, 4) float64 camera-to-world, OpenCV axes, world units;
    ``splits`` split name -> frame names.
    """

    root: Path
    names: list[str]
    images: dict[str, Path]
    hw: tuple[int, int]
    k: np.ndarray
    poses: np.ndarray
    splits: dict[str, list[str]]

    @property
    def k_pixel_corners(self) -> np.ndarray:
        """(3, 3) K with the top-left image corner at 0 and pixel centres at +0.5 (COLMAP, nerfstudio)."""
        k = np.array(self.k, dtype=np.float64)
        k[0, 2] += 0.5
        k[1, 2] += 0.5
        return k

    def has(self, folder: str) -> bool:
        """Whether the scene has the per-frame folder ``folder`` (a :data:`layout.FOLDERS` key)."""
        return (self.root / layout.FOLDERS[folder]).is_dir()


def read_cameras(root: str | Path) -> SceneCameras:
    """The cameras of the scene folder ``root`` (no pixel data is read).

    Raises:
        DataError: one line naming the file and the problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "scene folder not found")
    images = layout.list_frames(root)
    names = list(images)
    hw = layout.image_size(images[names[0]])
    for name in names[1:]:
        if layout.image_size(images[name]) != hw:
            raise DataError(images[name], f"image is not {hw[1]}x{hw[0]} like {images[names[0]].name}")
    k = layout.read_intrinsics(root / layout.INTRINSICS_FILE)
    poses = np.stack([layout.read_pose(root / layout.FOLDERS["pose"] / f"{name}.txt") for name in names])
    splits = layout.read_splits(root / layout.SPLITS_FILE)
    for split, frames in splits.items():
        missing = sorted(set(frames) - set(names))
        if missing:
            raise DataError(root / layout.SPLITS_FILE, f"split '{split}' names frame '{missing[0]}' which has no colour image")
    return SceneCameras(root, names, images, hw, k, poses, splits)


def export_scene(scene: str | Path, fmt: str, out: str | Path, *, force: bool = False) -> dict:
    """Write the scene folder ``scene`` in format ``fmt`` (:data:`SCENE_FORMATS`) to ``out``, completely
    or not at all; returns a summary (format, folder, frames, and what was written).

    Raises:
        ClusteringSDFError: an unknown format; DataError: a missing or malformed scene, or an
            ``out`` that holds files without ``force`` (nothing is written then).
    """
    if fmt not in SCENE_FORMATS:
        raise ClusteringSDFError(f"--format: '{fmt}' is not a scene format (one of {', '.join(SCENE_FORMATS)})")
    cameras = read_cameras(scene)
    with staged_folder(out, force=force, keep=[cameras.root]) as folder:
        summary = (write_nerfstudio if fmt == "nerfstudio" else write_colmap)(cameras, folder)
    return {"format": fmt, "folder": str(out), "frames": len(cameras.names), **summary}


def _copy_images(cameras: SceneCameras, folder: Path) -> dict[str, str]:
    """Copy the colour frames into ``folder/images``; frame name -> path relative to ``folder``."""
    (folder / "images").mkdir()
    paths = {}
    for name in cameras.names:
        source = cameras.images[name]
        paths[name] = f"images/{source.name}"
        shutil.copyfile(source, folder / paths[name])
    return paths


def _write_uint16(path: Path, array: np.ndarray) -> None:
    """A single-channel 16-bit PNG of ``array`` (H, W), values in 0..65535."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array).astype(np.uint16)).save(path, format="PNG")


def _frame_depth(cameras: SceneCameras, name: str) -> np.ndarray:
    """Depth of frame ``name`` in metres (H, W) float32, 0 = missing, checked to be of the frames' size."""
    path = cameras.root / layout.FOLDERS["depth"] / f"{name}.png"
    depth = layout.read_depth(path)
    if depth.shape != cameras.hw:
        raise DataError(path, f"depth map is {depth.shape[1]}x{depth.shape[0]} but the colour images are {cameras.hw[1]}x{cameras.hw[0]}")
    return depth


def _frame_instances(cameras: SceneCameras, name: str) -> np.ndarray:
    """Machine instance ids of frame ``name`` (H, W), checked to fit 16 bits and the frames' size."""
    path = cameras.root / layout.FOLDERS["m2f_instance"] / f"{name}.png"
    ids = layout.read_label(path)
    if ids.shape != cameras.hw:
        raise DataError(path, f"label map is {ids.shape[1]}x{ids.shape[0]} but the colour images are {cameras.hw[1]}x{cameras.hw[0]}")
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 65535:
        raise DataError(path, "instance ids must be in 0..65535")
    return ids


def write_nerfstudio(cameras: SceneCameras, folder: Path) -> dict:
    """``folder/transforms.json``, ``images/``, ``masks/`` and ``depth/`` (see the module docstring)."""
    images = _copy_images(cameras, folder)
    k = cameras.k_pixel_corners
    depth, masks = cameras.has("depth"), cameras.has("m2f_instance")
    frames = []
    for index, name in enumerate(cameras.names):
        frame = {"file_path": images[name], "transform_matrix": (cameras.poses[index] @ GL_FROM_CV).tolist()}
        if depth:
            frame["depth_file_path"] = f"depth/{name}.png"
            _write_uint16(folder / frame["depth_file_path"], np.round(_frame_depth(cameras, name) * 1000.0))
        if masks:
            frame["instance_path"] = f"masks/{name}.png"
            _write_uint16(folder / frame["instance_path"], _frame_instances(cameras, name))
        frames.append(frame)
    test = cameras.splits.get("test", [])
    transforms = {
        "camera_model": "OPENCV", "fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2]),
        "w": int(cameras.hw[1]), "h": int(cameras.hw[0]), "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": frames,
        "train_filenames": [images[n] for n in cameras.splits.get("train", [])],
        "val_filenames": [images[n] for n in test],
        "test_filenames": [images[n] for n in test],
        "clusteringsdf": {"scene": str(cameras.root.resolve()), "units": layout.scene_units(cameras.root)},
    }
    if masks:
        transforms["clusteringsdf"]["instance_path"] = "16-bit PNG of the frame's machine instance ids (0 = none), not consistent across frames"
    (folder / "transforms.json").write_text(json.dumps(transforms, indent=2) + "\n")
    return {"depth": depth, "instance_masks": masks}


def _depth_points(cameras: SceneCameras, index: int, per_frame: int) -> dict[str, np.ndarray]:
    """World points of frame ``index`` back-projected from its depth on a regular pixel grid of about
    ``per_frame`` pixels: ``xyz`` (n, 3), ``rgb`` (n, 3) uint8, ``uv`` (n, 2) COLMAP pixel coordinates."""
    name = cameras.names[index]
    depth = _frame_depth(cameras, name)
    height, width = cameras.hw
    step = max(1, int(np.ceil(np.sqrt(height * width / max(per_frame, 1)))))
    v, u = np.mgrid[step // 2 : height : step, step // 2 : width : step]
    z = depth[v, u]
    ok = z > 0
    u, v, z = u[ok].astype(np.float64), v[ok].astype(np.float64), z[ok].astype(np.float64)
    k, pose = cameras.k, cameras.poses[index]
    camera_points = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=-1)
    rgb = layout.read_color(cameras.images[name])[v.astype(int), u.astype(int)]
    return {"xyz": camera_points @ pose[:3, :3].T + pose[:3, 3], "rgb": rgb, "uv": np.stack([u + 0.5, v + 0.5], axis=-1)}


def write_colmap(cameras: SceneCameras, folder: Path, *, points: int = COLMAP_POINTS) -> dict:
    """``folder/sparse/0`` (binary COLMAP model, written by pycolmap in a child process, see
    :mod:`.colmap_worker`) and ``folder/images`` (see the module docstring)."""
    images = _copy_images(cameras, folder)
    work = folder / ".work"
    parts = []
    if cameras.has("depth"):
        parts = [_depth_points(cameras, i, points // len(cameras.names)) for i in range(len(cameras.names))]
    arrays = {
        "xyz": np.concatenate([p["xyz"] for p in parts]) if parts else np.zeros((0, 3)),
        "rgb": np.concatenate([p["rgb"] for p in parts]).astype(np.uint8) if parts else np.zeros((0, 3), np.uint8),
        "uv": np.concatenate([p["uv"] for p in parts]) if parts else np.zeros((0, 2)),
        "image": np.concatenate([np.full(len(p["xyz"]), i) for i, p in enumerate(parts)]).astype(np.int64) if parts else np.zeros(0, np.int64),
    }
    work.mkdir()
    np.savez(work / "points.npz", **arrays)
    k = cameras.k_pixel_corners
    request = {
        "task": "write_model", "out_dir": str(folder / "sparse" / "0"), "points": str(work / "points.npz"),
        "camera": {"model": "PINHOLE", "width": int(cameras.hw[1]), "height": int(cameras.hw[0]),
                   "params": [float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])]},
        "images": [{"name": Path(images[n]).name, "cam_from_world": np.linalg.inv(cameras.poses[i])[:3].tolist()} for i, n in enumerate(cameras.names)],
    }
    meta, _ = run_worker(request, work, "write_model")
    shutil.rmtree(work)
    return {"points3D": int(meta["points3D"]), "depth": cameras.has("depth")}
