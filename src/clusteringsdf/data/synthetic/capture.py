"""Synthetic captures for testing and benchmarking ``clusteringsdf prepare``.

:func:`write_capture` renders a room of the ``room`` preset along its camera loop at any frame count
and resolution into a scene folder holding what a user's capture has (``color/``, optionally
``depth/``) plus the truth to score ``prepare`` against: ``pose/``, ``intrinsic/``, ``splits.json``,
``segmentation_data.pkl``, ``rs_semantics/`` and ``rs_instance/``. It writes no machine labels.

``textured=True`` re-dresses the room shell (walls, floor, ceiling) and every object part with
high-contrast procedural textures (smooth value-noise blobs, 10-30 cm features) so that SIFT finds
enough features on every view; ``textured=False`` keeps the ``room`` preset's own, nearly plain
materials (on which SfM fails: the case of the RGB-D odometry path). Neither changes what
``clusteringsdf synth`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import layout
from ..classes import NUM_CLASSES, REDUCED_SCANNET_CLASSES, STUFF_CLASSES, THING_CLASSES
from .generator import PRESETS, SceneRenderer, _plan_scene, intrinsics
from .room import Part, Room
from .shading import Material

__all__ = ["CaptureInfo", "write_capture"]


@dataclass(frozen=True)
class CaptureInfo:
    """What :func:`write_capture` wrote.

    ``poses`` (F, 4, 4) are the true camera-to-world poses (OpenCV axes, metres), ``k`` (3, 3) the
    true pinhole intrinsics; ``extent`` is the diagonal of the room's bounding box in metres (the
    scale that pose errors are compared with).
    """

    root: Path
    names: list[str]
    poses: np.ndarray
    k: np.ndarray
    width: int
    height: int
    extent: float


def _textured(material: Material, index: int) -> Material:
    """A high-contrast, multi-scale version of ``material`` (same base colour)."""
    base = np.asarray(material.color)
    other = tuple(float(v) for v in np.clip(1.0 - 0.8 * base, 0.05, 0.95))
    return Material(material.color, "blobs", scale=0.08, strength=0.3, color2=other, seed=1000 + 17 * index)


def _dress(room: Room) -> Room:
    """The same room with every material replaced by a textured one."""
    shell = tuple(_textured(m, i) for i, m in enumerate(room.shell_materials))
    objects = []
    count = len(shell)
    for obj in room.objects:
        parts = []
        for part in obj.parts:
            parts.append(Part(part.shape, _textured(part.material, count)))
            count += 1
        objects.append(replace(obj, parts=parts))
    return replace(room, shell_materials=shell, objects=objects)


def write_capture(
    out_dir: Path,
    num_frames: int = 36,
    width: int = 160,
    height: int = 120,
    *,
    seed: int = 0,
    textured: bool = True,
    depth: bool = True,
    preset: str = "room",
) -> CaptureInfo:
    """Render a synthetic capture with its truth into ``out_dir`` (created; must not hold files).

    Args:
        num_frames: frames spread evenly over the preset's camera loop (100 frames of ``room`` give
            exactly its cameras; 100 of ``large`` take every third of its 300).
        width, height: image size; the field of view is the preset's (65 degrees horizontally).
        seed: room layout and camera path seed (seed 0 is the room of ``synth --preset room``).
        preset: ``room`` (one room) or ``large`` (two connected rooms, a longer loop).
        textured: re-dress every surface with high-contrast texture (see the module docstring).
        depth: also write ``depth/`` (uint16 millimetres).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: folder exists and is not empty")
    if num_frames < 2:
        raise ValueError("num_frames must be at least 2")
    if preset not in ("room", "large"):
        raise ValueError(f"preset must be room or large, got '{preset}'")
    preset = replace(PRESETS[preset], width=width, height=height)
    k = intrinsics(width, height, preset.hfov_deg)
    plan = _plan_scene(preset, seed, k)  # the verified layout and 100-frame loop of the room preset
    chosen = np.round(np.linspace(0, preset.num_frames, num_frames, endpoint=False)).astype(int)
    poses = plan.poses[chosen]
    room = _dress(plan.room) if textured else plan.room
    renderer = SceneRenderer(room, k, width, height)
    class_of = np.array([o.class_id for o in room.objects], dtype=np.int64)
    instance_of = np.array([o.instance_id for o in room.objects], dtype=np.int64)
    names = [f"{i:04d}" for i in range(num_frames)]
    for f, name in enumerate(names):
        frame = renderer.render(poses[f])
        layout.write_color(out_dir / "color" / f"{name}.png", frame["color"])
        if depth:
            layout.write_depth(out_dir / "depth" / f"{name}.png", frame["depth"])
        layout.write_matrix(out_dir / "pose" / f"{name}.txt", poses[f])
        layout.write_label(out_dir / "rs_semantics" / f"{name}.png", class_of[frame["object"]])
        layout.write_label(out_dir / "rs_instance" / f"{name}.png", instance_of[frame["object"]])
    layout.write_intrinsics(out_dir / layout.INTRINSICS_FILE, k)
    layout.write_splits(out_dir / layout.SPLITS_FILE, {"train": [n for i, n in enumerate(names) if i % 4], "test": names[::4]})
    layout.write_segmentation_data(
        out_dir / layout.SEGMENTATION_FILE,
        {
            "num_semantic_classes": NUM_CLASSES,
            "fg_classes": list(THING_CLASSES),
            "bg_classes": list(STUFF_CLASSES),
            "class_names": dict(REDUCED_SCANNET_CLASSES),
        },
    )
    extent = float(np.linalg.norm(room.size))
    (out_dir / "capture_info.json").write_text(
        json.dumps({"preset": preset.name, "seed": seed, "textured": textured, "frames": num_frames, "width": width, "height": height, "extent_m": extent}, indent=1)
        + "\n"
    )
    return CaptureInfo(out_dir, names, poses.copy(), k, width, height, extent)
