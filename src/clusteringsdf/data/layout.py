"""Readers and writers for the individual files of the Panoptic Lifting scene layout.

Every reader returns a plain numpy array and raises :class:`DataError` naming the file when the file
is missing, unreadable, truncated or of the wrong kind. Writers produce files the readers accept and
that the published Panoptic Lifting / Contrastive Lift loaders read as well.

Folder names of the layout (relative to the scene root) are collected in :data:`FOLDERS`.
"""

from __future__ import annotations

import json
import pickle
import shlex
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError
from ..files import atomic_write
from .safe_pickle import load_safe_pickle

FOLDERS = {
    "color": "color",
    "pose": "pose",
    "intrinsic": "intrinsic",
    "depth": "depth",
    "normal": "normal",
    "m2f_semantics": "m2f_semantics",
    "m2f_instance": "m2f_instance",
    "m2f_segments": "m2f_segments",
    "m2f_probabilities": "m2f_probabilities",
    "rs_semantics": "rs_semantics",
    "rs_instance": "rs_instance",
}
COLOR_SUFFIXES = (".jpg", ".jpeg", ".png")
INTRINSICS_FILE = "intrinsic/intrinsic_color.txt"
SPLITS_FILE = "splits.json"
SEGMENTATION_FILE = "segmentation_data.pkl"
GT_MESH_FILE = "gt_mesh.ply"
PREPARE_FILE = "prepare.json"
POINTS_FILE = "points3d.ply"  # optional sparse world points (structure-from-motion) of a scene without depth


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        image = Image.open(path)
        image.load()  # forces decoding: truncated files fail here, not later
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})") from None
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, read from its header only."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable image ({exc})") from None
    return height, width


def read_color(path: Path) -> np.ndarray:
    """Colour image as uint8 (H, W, 3); alpha is dropped, grey is expanded."""
    image = _open_image(path)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_label(path: Path) -> np.ndarray:
    """Integer label map (H, W) as int64, whatever integer type the PNG stores (8, 16 or 32 bit)."""
    image = _open_image(path)
    if image.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        raise DataError(path, f"label map must be a single-channel integer image, got mode {image.mode}")
    if image.mode == "F":
        array = np.asarray(image)
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise DataError(path, "label map holds non-integer values")
    array = np.asarray(image)
    if array.ndim != 2:
        raise DataError(path, f"label map must be 2-D, got shape {array.shape}")
    return array.astype(np.int64)


def read_depth(path: Path) -> np.ndarray:
    """Depth map in metres as float32 (H, W); 0 marks missing depth. Stored as uint16 millimetres."""
    image = _open_image(path)
    array = np.asarray(image)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer) or array.dtype == np.uint8:
        raise DataError(path, f"depth must be a 16-bit single-channel PNG in millimetres, got mode {image.mode}")
    return array.astype(np.float32) / 1000.0


def read_normal(path: Path) -> np.ndarray:
    """Camera-frame (OpenCV) unit normals as float32 (H, W, 3); zero vectors mark missing normals.

    Accepts an 8-bit RGB PNG encoding ``(n + 1) / 2`` or a ``.npy`` array of shape (H, W, 3) or
    (3, H, W) with values in [0, 1] (encoded) or [-1, 1].
    """
    if path.suffix == ".npy":
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            array = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable normal map ({exc})") from None
        if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
            array = np.moveaxis(array, 0, -1)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise DataError(path, f"normal map must have shape (H, W, 3) or (3, H, W), got {array.shape}")
        if array.min() >= 0.0:
            array = array * 2.0 - 1.0
    else:
        image = _open_image(path)
        if image.mode != "RGB":
            raise DataError(path, f"normal map must be an RGB image, got mode {image.mode}")
        encoded = np.asarray(image, dtype=np.float32)
        missing = np.all(encoded == 0, axis=-1)
        array = encoded / 127.5 - 1.0
        array[missing] = 0.0
    norm = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.where(norm > 1e-3, array / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def read_matrix(path: Path, what: str) -> np.ndarray:
    """A whitespace-separated matrix text file as float64."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(path, f"{what} is not a numeric matrix ({exc})") from None
    return matrix


def check_rigid(path: Path, matrix: np.ndarray, what: str) -> None:
    """One-line DataError unless ``matrix`` (4, 4) is a finite rigid transform: last row 0 0 0 1,
    rotation orthonormal within 1e-3 and not a reflection. ``what`` names it in the message."""
    if not np.all(np.isfinite(matrix)):
        raise DataError(path, f"{what} holds non-finite values (inf or nan)")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise DataError(path, f"not a rigid transform: the last row must be 0 0 0 1, got {' '.join(f'{v:g}' for v in matrix[3])}")
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > 1e-3:
        raise DataError(path, f"not a rigid transform: the rotation is not orthonormal (R R^T differs from I by {error:.2g} > 1e-3)")
    if np.linalg.det(rotation) < 0:
        raise DataError(path, "not a rigid transform: the rotation is a reflection (determinant -1)")


def read_pose(path: Path) -> np.ndarray:
    """Camera-to-world pose (OpenCV convention) as float64 (4, 4), checked to be a finite rigid transform."""
    pose = read_matrix(path, "pose")
    if pose.shape != (4, 4):
        raise DataError(path, f"pose must be a 4x4 matrix, got shape {pose.shape[0]}x{pose.shape[1]}")
    check_rigid(path, pose, "pose")
    return pose


def read_intrinsics(path: Path) -> np.ndarray:
    """Pinhole intrinsics K (3, 3) from a 3x3 or 4x4 text matrix (top-left 3x3 used)."""
    matrix = read_matrix(path, "intrinsics")
    if matrix.shape not in ((3, 3), (4, 4)):
        raise DataError(path, f"intrinsics must be a 3x3 or 4x4 matrix, got {matrix.shape[0]}x{matrix.shape[1]}")
    k = matrix[:3, :3]
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise DataError(path, "intrinsics must be finite with positive focal lengths")
    return k


def read_probabilities(path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """Segmenter class probabilities (h, w, C) or None, and confidence (h', w'), from an ``.npz``.

    Either may be stored at a lower resolution than the colour images; callers resize.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "confidence" not in keys:
                raise DataError(path, f"probabilities file has no 'confidence' array (keys: {sorted(keys)})")
            confidence = data["confidence"].astype(np.float32)
            probability = data["probability"].astype(np.float32) if "probability" in keys else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(path, f"unreadable probabilities file ({exc})") from None
    if confidence.ndim != 2:
        raise DataError(path, f"'confidence' must be 2-D, got shape {confidence.shape}")
    if probability is not None and probability.ndim != 3:
        raise DataError(path, f"'probability' must be (H, W, C), got shape {probability.shape}")
    return probability, confidence


def read_splits(path: Path) -> dict[str, list[str]]:
    """``splits.json``: {"train": [...], "test": [...]} (a "val" list stands in for a missing "test")."""
    if not path.is_file():
        raise not_a_scene(path.parent) or DataError(path, "file not found")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or "train" not in raw:
        raise DataError(path, "must be a JSON object with a 'train' list")
    splits: dict[str, list[str]] = {}
    for name, frames in raw.items():
        if not isinstance(frames, list):
            raise DataError(path, f"split '{name}' must be a list of frame names")
        splits[name] = [str(frame) for frame in frames]
    if "test" not in splits and "val" in splits:
        splits["test"] = splits["val"]
    return splits


def read_segmentation_data(path: Path) -> dict[str, Any]:
    """``segmentation_data.pkl`` loaded with the restricted unpickler (plain containers and numbers only)."""
    data = load_safe_pickle(path)
    if not isinstance(data, dict):
        raise DataError(path, f"must hold a dict, got {type(data).__name__}")
    for key in ("fg_classes", "bg_classes"):
        if key not in data:
            raise DataError(path, f"missing key '{key}'")
    return data


def scene_is_metric(root: Path) -> bool:
    """Whether the scene's world frame is in metres: yes, unless ``prepare.json`` says the poses
    came without a metric scale (structure-from-motion without depth)."""
    try:
        metric = json.loads((Path(root) / PREPARE_FILE).read_text())["poses"]["metric"]
    except (OSError, ValueError, KeyError, TypeError):
        metric = True  # datasets in this layout (Replica, ScanNet, Hypersim, synthetic) are metric
    return metric is not False


def scene_depth_source(root: Path) -> str:
    """Where the scene's ``depth/`` came from: ``sensor`` (and datasets in this layout), ``mono``
    (``prepare --mono-depth``: a model's relative depth fitted to the SfM points), ``sfm``
    (interpolated from the SfM points of a colour-only capture) or ``none``, as ``prepare.json``
    records it."""
    try:
        source = json.loads((Path(root) / PREPARE_FILE).read_text())["depth_source"]
    except (OSError, ValueError, KeyError, TypeError):
        source = "sensor"
    return source if source in ("sensor", "mono", "sfm", "none") else "sensor"


def scene_units(root: Path) -> str:
    """A note on the unit of the scene's world frame (of its poses): see :func:`scene_is_metric`."""
    if not scene_is_metric(root):
        return "the scene's world frame; arbitrary scale (its poses have no metric scale, see prepare.json)"
    return "metres, in the scene's world frame (its poses)"


def frame_sort_key(names: list[str]) -> list[str]:
    """Frames sorted numerically when every name is an integer (``int('0_0012') == 12``), else lexicographically."""
    try:
        keys = [int(name) for name in names]
    except ValueError:
        return sorted(names)
    return [name for _, name in sorted(zip(keys, names))]


# what ``prepare`` reads: images and videos of a capture (a capture given as a scene is named as such)
CAPTURE_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".pgm", ".ppm", ".pnm")
CAPTURE_VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")


def not_a_scene(root: Path) -> DataError | None:
    """The error for a capture given where a prepared scene belongs (a folder of photos without
    ``splits.json`` and ``pose/``, or a video file), saying how to prepare it; None otherwise."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in CAPTURE_VIDEO_SUFFIXES:
        return DataError(root, f"a video, not a prepared scene; run clusteringsdf prepare --video {shlex.quote(str(root))} --out SCENE first")
    if not root.is_dir() or (root / SPLITS_FILE).is_file() or (root / FOLDERS["pose"]).is_dir():
        return None
    for folder in (root, root / FOLDERS["color"]):
        if folder.is_dir() and any(p.suffix.lower() in CAPTURE_IMAGE_SUFFIXES for p in folder.iterdir()):
            return DataError(root, "not a prepared scene (images, but no splits.json or pose/); "
                             f"run clusteringsdf prepare --images {shlex.quote(str(folder))} --out SCENE first")
    return None


def list_frames(root: Path) -> dict[str, Path]:
    """Map frame name -> colour image path; the frame list is the set of stems in ``color/``."""
    capture = not_a_scene(root)
    if capture is not None:
        raise capture
    folder = root / FOLDERS["color"]
    if not folder.is_dir():
        raise DataError(folder, "missing folder (a scene needs color/ with one image per frame)")
    found = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in COLOR_SUFFIXES}
    if not found:
        raise DataError(folder, "no .jpg or .png images")
    return {name: found[name] for name in frame_sort_key(list(found))}


def find_frame_file(folder: Path, name: str, suffixes: tuple[str, ...] = (".png",)) -> Path | None:
    """The file of frame ``name`` in ``folder`` with one of ``suffixes``, or None."""
    for suffix in suffixes:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


# ----------------------------------------------------------------------------------------- writers


def write_color(path: Path, rgb: np.ndarray) -> None:
    """uint8 (H, W, 3) colour; JPEG or PNG by suffix."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8), mode="RGB")
    quality = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    atomic_write(path, lambda p: image.save(p, format="JPEG" if quality else "PNG", **quality))


def write_label(path: Path, labels: np.ndarray) -> None:
    """Integer label map (H, W) as an 8-bit PNG when it fits, else 16-bit (PNG holds no more)."""
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0:
        raise ValueError(f"{path}: label maps must be non-negative")
    top = int(labels.max(initial=0))
    if top < 256:
        image = Image.fromarray(labels.astype(np.uint8), mode="L")
    elif top < 65536:
        image = Image.fromarray(labels.astype(np.uint16))
    else:
        raise ValueError(f"{path}: label {top} does not fit a 16-bit PNG")
    atomic_write(path, lambda p: image.save(p, format="PNG"))


def write_depth(path: Path, depth_m: np.ndarray) -> None:
    """Depth in metres (H, W) as uint16 millimetres (0 = missing)."""
    mm = np.clip(np.round(np.nan_to_num(depth_m) * 1000.0), 0, 65535).astype(np.uint16)
    atomic_write(path, lambda p: Image.fromarray(mm).save(p, format="PNG"))


def write_normal(path: Path, normals: np.ndarray) -> None:
    """Camera-frame unit normals (H, W, 3) as RGB PNG encoding (n + 1) / 2; zero vectors stay black."""
    normals = np.asarray(normals, dtype=np.float32)
    missing = np.linalg.norm(normals, axis=-1) < 1e-3
    encoded = np.clip(np.round((normals + 1.0) * 127.5), 1, 255).astype(np.uint8)
    encoded[missing] = 0
    atomic_write(path, lambda p: Image.fromarray(encoded, mode="RGB").save(p, format="PNG"))


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    text = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in np.asarray(matrix, dtype=np.float64)) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def write_points(path: Path, points: np.ndarray) -> None:
    """World points (N, 3) as a PLY point cloud, atomically."""
    import trimesh

    cloud = trimesh.PointCloud(np.asarray(points, dtype=np.float64))
    atomic_write(path, lambda tmp: tmp.write_bytes(cloud.export(file_type="ply")))


def read_points(path: Path) -> np.ndarray:
    """World points (N, 3) float64 of a PLY point cloud (or of a mesh's vertices); DataError when unreadable."""
    import trimesh

    try:
        loaded = trimesh.load(path, process=False)
        points = np.asarray(loaded.vertices, dtype=np.float64).reshape(-1, 3)
    except Exception as exc:  # noqa: BLE001 - any parser error is a bad file
        raise DataError(path, f"unreadable point cloud ({exc})") from None
    if not np.isfinite(points).all():
        raise DataError(path, "point cloud holds non-finite coordinates")
    return points


def write_intrinsics(path: Path, k: np.ndarray) -> None:
    """K (3, 3) written as the 4x4 ``intrinsic_color.txt`` of the layout."""
    full = np.eye(4)
    full[:3, :3] = k
    write_matrix(path, full)


def write_probabilities(path: Path, probability: np.ndarray | None, confidence: np.ndarray) -> None:
    """Compressed ``.npz`` with ``confidence`` (h, w) and optionally ``probability`` (h', w', C), float16."""
    arrays = {"confidence": np.asarray(confidence, dtype=np.float16)}
    if probability is not None:
        arrays["probability"] = np.asarray(probability, dtype=np.float16)
    atomic_write(path, lambda p: np.savez_compressed(p, **arrays))


def write_splits(path: Path, splits: dict[str, list[str]]) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(splits, indent=1) + "\n"))


def write_segmentation_data(path: Path, data: dict[str, Any]) -> None:
    """Pickle of plain containers and ints (readable by the restricted unpickler and by PL's loader)."""
    atomic_write(path, lambda p: p.write_bytes(pickle.dumps(data, protocol=4)))
