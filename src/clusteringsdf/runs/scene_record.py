"""What a run records of its scene (``RUN/scene.json``), so that a run folder renders, meshes and is
viewed without its scene folder, and finds the scene's frames again when both move together.

The record holds everything inference needs that is not pixels: the frame names and splits, the
cameras (normalised poses, intrinsics at the working size), the normalisation between the world
and the model's frame, the scene box and the classes. It also records where the scene was, as a
path relative to the run folder and as an absolute path. A command that needs frames (meshing's
observation rules, the report's input columns, scores) looks for the scene, in this order: a path
the user gives (``--scene``), the recorded relative path, the recorded absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import layout
from ..data.scene import Normalization, Scene, SegmentationClasses
from ..errors import ClusteringSDFError, RunError
from ..files import write_json_atomic
from .folder import load_json

SCENE_FILE = "scene.json"
RECORD_FORMAT = 1


def scene_record(scene: Scene, run_dir: Path) -> dict[str, Any]:
    """The record of a loaded scene for a run in ``run_dir`` (plain JSON values)."""
    classes = scene.classes
    root = Path(scene.root).resolve()
    return {
        "format": RECORD_FORMAT,
        "path": os.path.relpath(root, Path(run_dir).resolve()),
        "absolute_path": str(root),
        "frames": list(scene.frame_names),
        "splits": {name: [int(i) for i in frames] for name, frames in scene.splits.items()},
        "native_hw": list(scene.native_hw),
        "hw": list(scene.hw),
        "intrinsics": np.asarray(scene.intrinsics, dtype=np.float64).tolist(),
        "poses": np.asarray(scene.poses, dtype=np.float64).tolist(),
        "normalization": {"center": np.asarray(scene.normalization.center, dtype=np.float64).tolist(), "scale": float(scene.normalization.scale)},
        "bbox": np.asarray(scene.bbox, dtype=np.float64).tolist(),
        "classes": {
            "num_classes": classes.num_classes, "thing_classes": list(classes.thing_classes), "stuff_classes": list(classes.stuff_classes),
            "names": {str(k): v for k, v in classes.names.items()}, "class_agnostic": classes.class_agnostic,
        },
    }


def write_scene_record(run_dir: Path, scene: Scene) -> None:
    """Write RUN/scene.json for ``scene`` (atomically)."""
    write_json_atomic(Path(run_dir) / SCENE_FILE, scene_record(scene, run_dir))


def read_scene_record(run_dir: Path) -> dict[str, Any] | None:
    """RUN/scene.json, or None for a run written before runs recorded their scene."""
    path = Path(run_dir) / SCENE_FILE
    if not path.is_file():
        return None
    record = load_json(path)
    if record.get("format") != RECORD_FORMAT:
        raise RunError(f"{path}: written by another version of clusteringsdf (format {record.get('format')!r}, this one reads {RECORD_FORMAT})")
    return record


def recorded_frame(record: dict[str, Any]) -> tuple[Normalization, np.ndarray]:
    """The normalisation and scene box (2, 3) float32 a run's model lives in."""
    normalization = Normalization(center=np.asarray(record["normalization"]["center"], dtype=np.float64), scale=float(record["normalization"]["scale"]))
    return normalization, np.asarray(record["bbox"], dtype=np.float32)


def scene_from_record(record: dict[str, Any], root: Path) -> Scene:
    """The scene's cameras and classes as the run recorded them (no pixel data); ``root`` is where
    the scene folder is, or was."""
    classes = record["classes"]
    normalization, bbox = recorded_frame(record)
    return Scene(
        root=Path(root),
        frame_names=list(record["frames"]),
        native_hw=tuple(record["native_hw"]),
        hw=tuple(record["hw"]),
        intrinsics=np.asarray(record["intrinsics"], dtype=np.float32),
        poses=np.asarray(record["poses"], dtype=np.float32),
        normalization=normalization,
        bbox=bbox,
        splits={name: np.asarray(frames, dtype=np.int64) for name, frames in record["splits"].items()},
        classes=SegmentationClasses(
            num_classes=int(classes["num_classes"]), thing_classes=tuple(classes["thing_classes"]),
            stuff_classes=tuple(classes["stuff_classes"]), names={int(k): v for k, v in classes["names"].items()},
            class_agnostic=bool(classes["class_agnostic"]),
        ),
    )


def scene_candidates(run_dir: Path, record: dict[str, Any] | None, recorded: str | None, override: Path | None) -> list[Path]:
    """Where a run's scene folder may be, in the order they are tried: ``override``, the recorded
    path relative to the run folder, the recorded absolute path (``recorded``, config.json's)."""
    candidates = [Path(override)] if override is not None else []
    if record is not None:
        candidates += [Path(run_dir) / record["path"], Path(record["absolute_path"])]
    if recorded is not None:
        candidates.append(Path(recorded))
    return candidates


def locate_scene(run_dir: Path, record: dict[str, Any] | None, recorded: str | None, override: Path | None) -> Path | None:
    """The run's scene folder: the first of :func:`scene_candidates` that holds the run's scene
    (:func:`is_recorded_scene`), None when none does. A ``--scene`` that is not a folder, or holds
    another scene, is a one-line RunError."""
    if override is not None and not Path(override).is_dir():
        raise RunError(f"{override}: --scene is not a folder")
    if override is not None and record is not None and not is_recorded_scene(Path(override), record):
        raise RunError(f"{override}: --scene holds another scene than the run's (its frames or cameras differ)")
    for candidate in scene_candidates(run_dir, record, recorded, override):
        if (candidate / "color").is_dir() and (record is None or is_recorded_scene(candidate, record)):
            return candidate.resolve()
    return None


def is_recorded_scene(root: Path, record: dict[str, Any]) -> bool:
    """Whether the scene folder ``root`` holds the recorded scene: the same frames, and its first
    camera where the run recorded it (a folder of another scene with the same frame names is not it)."""
    try:
        frames = list(layout.list_frames(root))
        if frames != list(record["frames"]):
            return False
        normalization, _ = recorded_frame(record)
        pose = normalization.pose_to_norm(layout.read_pose(root / "pose" / f"{frames[0]}.txt"))
        return bool(np.allclose(pose, np.asarray(record["poses"][0]), atol=1e-4))
    except (ClusteringSDFError, OSError, IndexError):
        return False
