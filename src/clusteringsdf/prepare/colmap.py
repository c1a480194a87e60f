"""The parent side of :mod:`.colmap_worker`: structure-from-motion and COLMAP models, in a child process.

:func:`run_worker` sends one request to a fresh ``python -m clusteringsdf.prepare.colmap_worker``
process and returns its answer; the parent process never imports pycolmap (see the worker's
docstring). :func:`structure_from_motion` and :func:`read_colmap_model` turn answers into a
:class:`ColmapModel`; :func:`undistortion` gives the pinhole camera and remap grid of a distorted
camera.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ClusteringSDFError, DataError
from .cameras import PINHOLE_MODELS, colmap_to_layout_k

__all__ = ["ColmapCamera", "ColmapModel", "read_colmap_model", "require_pycolmap", "run_worker", "structure_from_motion", "undistortion"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds clusteringsdf/


def require_pycolmap() -> None:
    if importlib.util.find_spec("pycolmap") is None:
        raise ClusteringSDFError('structure-from-motion and COLMAP models need pycolmap: pip install -e ".[prepare]"')


@dataclass(frozen=True)
class ColmapCamera:
    """A COLMAP camera: model name, image size and parameters (COLMAP pixel convention)."""

    model: str
    width: int
    height: int
    params: tuple[float, ...]

    @property
    def has_distortion(self) -> bool:
        """Whether the model has distortion terms (:func:`undistortion` checks their size)."""
        return self.model not in PINHOLE_MODELS


@dataclass
class ColmapModel:
    """Registered images of a COLMAP model.

    ``cam_from_world`` maps image name -> (3, 4); ``observations`` image name -> (N, 3) keypoints
    (u, v) with a 3D point, COLMAP pixel convention, and that point's depth z in the camera;
    ``camera_of`` image name -> camera id; ``models`` lists the images of every model found
    (largest first); ``matching`` holds feature/pair counts (SfM only).
    """

    cam_from_world: dict[str, np.ndarray]
    observations: dict[str, np.ndarray]
    camera_of: dict[str, int]
    cameras: dict[int, ColmapCamera]
    models: list[list[str]]
    matching: dict


def run_worker(request: dict, work_dir: Path, log_name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Run one worker request in a child process; returns (meta, arrays).

    Raises:
        ClusteringSDFError: the child failed (the last line of its output is quoted; the whole output
            is in ``work_dir/<log_name>``).
    """
    require_pycolmap()
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path = work_dir / f"{log_name}.request.json"
    answer_path = work_dir / f"{log_name}.answer.npz"
    request_path.write_text(json.dumps(request))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    threads = str(request.get("threads", 2))
    env.setdefault("OMP_NUM_THREADS", threads)
    with open(work_dir / f"{log_name}.log", "w") as log_file:
        process = subprocess.run(
            [sys.executable, "-m", "clusteringsdf.prepare.colmap_worker", str(request_path), str(answer_path)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    if process.returncode != 0 or not answer_path.is_file():
        lines = [line for line in (work_dir / f"{log_name}.log").read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit code {process.returncode}"
        raise ClusteringSDFError(f"COLMAP {request['task']} failed: {last[:300]} (log: {work_dir / f'{log_name}.log'})")
    with np.load(answer_path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {key: data[key] for key in data.files if key != "meta"}
    return meta, arrays


def _model(meta: dict, arrays: dict[str, np.ndarray]) -> ColmapModel:
    cameras = {int(key): ColmapCamera(c["model"], int(c["width"]), int(c["height"]), tuple(c["params"])) for key, c in meta["cameras"].items()}
    poses, observations, camera_of = {}, {}, {}
    for index, image in enumerate(meta["images"]):
        poses[image["name"]] = arrays[f"image{index}_pose"]
        observations[image["name"]] = arrays[f"image{index}_obs"]
        camera_of[image["name"]] = int(image["camera_id"])
    return ColmapModel(poses, observations, camera_of, cameras, meta.get("models", []), meta.get("matching", {}))


def structure_from_motion(
    image_dir: Path,
    image_names: list[str],
    work_dir: Path,
    matching: str,
    *,
    camera_model: str = "SIMPLE_RADIAL",
    camera_params: list[float] | None = None,
    threads: int = 2,
    seed: int = 0,
    keyframe_stride: int = 1,
) -> ColmapModel:
    """SIFT + ``matching`` ("sequential" or "exhaustive") + incremental mapper; the largest model.

    ``image_names`` are file names inside ``image_dir`` in capture order; ``camera_params`` (COLMAP
    convention) fixes the intrinsics of ``camera_model``; ``keyframe_stride`` > 1 maps every
    stride-th frame first and then registers the others into that model.
    """
    request = {
        "task": "sfm", "image_dir": str(image_dir), "image_names": image_names, "work_dir": str(work_dir / "colmap"),
        "matching": matching, "camera_model": camera_model, "camera_params": camera_params, "threads": threads, "seed": seed,
        "keyframe_stride": keyframe_stride,
    }
    meta, arrays = run_worker(request, work_dir, "sfm")
    return _model(meta, arrays)


def read_colmap_model(model_dir: Path, work_dir: Path) -> ColmapModel:
    """A COLMAP sparse model folder (``cameras``, ``images``, ``points3D`` as .bin or .txt)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(model_dir, "COLMAP model folder not found")
    found = {p.name for p in model_dir.iterdir()}
    if not ({"cameras.bin", "images.bin"} <= found or {"cameras.txt", "images.txt"} <= found):
        children = sorted(p for p in model_dir.iterdir() if p.is_dir() and ((p / "images.bin").is_file() or (p / "images.txt").is_file()))
        if len(children) >= 1:  # a `sparse/` folder holding `0/`, `1/`...: the largest is chosen by the caller's order
            model_dir = children[0]
        else:
            raise DataError(model_dir, "not a COLMAP sparse model (needs cameras.bin + images.bin or cameras.txt + images.txt)")
    meta, arrays = run_worker({"task": "read_model", "model_dir": str(model_dir)}, work_dir, "read_model")
    if "error" in meta:
        raise DataError(model_dir, meta["error"])
    return _model(meta, arrays)


def undistortion(camera: ColmapCamera, work_dir: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Pinhole K (layout convention) and remap grid (H, W, 2) (layout convention) for ``camera``.

    The pinhole camera keeps the image size, focal lengths and principal point. The grid is None
    when no pixel moves by more than 0.05 pixel.
    """
    meta, arrays = run_worker(
        {"task": "undistort", "model": camera.model, "width": camera.width, "height": camera.height, "params": list(camera.params)},
        work_dir, "undistort",
    )
    k = colmap_to_layout_k(arrays["k"])
    grid = arrays["map"] - 0.5
    identity = np.stack(np.meshgrid(np.arange(camera.width), np.arange(camera.height)), axis=-1)
    if np.max(np.abs(grid - identity)) < 0.05:
        return k, None
    return k, grid.astype(np.float32)
