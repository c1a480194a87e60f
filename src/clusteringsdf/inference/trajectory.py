"""Novel-view trajectories of a trained run: frames and a video of colour | depth | normals |
semantics | instances side by side (``clusteringsdf render --trajectory ...``).

Trajectories are built from the training cameras (normalised coordinates):

* ``train``: the training cameras themselves, evenly sub-sampled to N frames;
* ``orbit``: a horizontal circle around the centre of the camera positions, at the mean camera
  height and the median camera distance from that centre, looking outward (a 360 degree pan of the
  room) with the scan's median pitch, so the views stay where the scan observed the scene;
* ``spiral``: the orbit with its radius breathing between 60% and 100%, its height moving up and
  down by 10% of the room height and its pitch by 10 degrees, twice per turn.

"Up" is the mean of the training cameras' up vectors (OpenCV: minus the camera y axis).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.layout import write_color
from ..data.scene import camera_up
from ..errors import ClusteringSDFError
from ..runs import TrainedRun
from .evaluate_run import label_cameras
from .visualize import color_image, depth_image, instance_image, normal_image, semantic_image, tile

TRAJECTORIES = ("orbit", "spiral", "train")
PANELS = ("colour", "depth", "normals", "semantics", "instances")


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (4, 4) at ``eye`` looking at ``target`` (x right, y down, z forward)."""
    forward = _normalize(target - eye)
    right = _normalize(np.cross(forward, up))
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def trajectory_poses(train_poses: np.ndarray, bbox: np.ndarray, kind: str, frames: int) -> np.ndarray:
    """Camera-to-world poses (frames, 4, 4) for a trajectory around the training cameras (T, 4, 4)."""
    if kind not in TRAJECTORIES:
        raise ClusteringSDFError(f"--trajectory: expected one of {', '.join(TRAJECTORIES)}, got '{kind}'")
    if frames < 1:
        raise ClusteringSDFError(f"--frames: expected a positive number, got {frames}")
    if kind == "train":
        index = np.round(np.linspace(0, len(train_poses) - 1, frames)).astype(int)
        return train_poses[index].astype(np.float64)
    up = camera_up(train_poses)
    positions = train_poses[:, :3, 3]
    centre = positions.mean(0)
    helper = np.eye(3)[int(np.argmin(np.abs(up)))]
    e1 = _normalize(helper - helper.dot(up) * up)
    e2 = np.cross(up, e1)
    offsets = positions - centre
    horizontal = offsets - np.outer(offsets @ up, up)
    radius = float(np.median(np.linalg.norm(horizontal, axis=1)))
    heights = (bbox - centre) @ up
    room_height = float(abs(heights[1] - heights[0]))
    pitch = float(np.median(np.arcsin(np.clip(train_poses[:, :3, 2] @ up, -1.0, 1.0))))  # how the scan looked up/down
    poses = []
    for t in np.arange(frames) / frames:
        angle = 2 * np.pi * t
        r, h, tilt = radius, 0.0, pitch
        if kind == "spiral":
            r = radius * (0.8 + 0.2 * np.cos(4 * np.pi * t))
            h = 0.1 * room_height * np.sin(4 * np.pi * t)
            tilt = pitch + np.radians(10.0) * np.sin(4 * np.pi * t)
        outward = np.cos(angle) * e1 + np.sin(angle) * e2
        eye = centre + r * outward + h * up
        forward = np.cos(tilt) * outward + np.sin(tilt) * up
        poses.append(look_at(eye, eye + forward, up))
    return np.stack(poses)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    """MP4 (H.264 through imageio-ffmpeg); falls back to an animated GIF when no encoder works."""
    import imageio.v2 as imageio

    even = [np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2), (0, 0)), constant_values=255) for f in frames]
    try:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p") as writer:
            for frame in even:
                writer.append_data(frame)
        return path
    except Exception:  # noqa: BLE001 - no ffmpeg available: a GIF needs nothing but Pillow
        path.unlink(missing_ok=True)
        gif = path.with_suffix(".gif")
        from PIL import Image

        pictures = [Image.fromarray(f) for f in frames]
        pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
        return gif


def render_trajectory(
    trained: TrainedRun, kind: str, frames: int, out_dir: Path, *, video: bool = False, progress: bool = True,
    min_segment_fraction: float | None = None,
) -> dict:
    """Render a trajectory into ``out_dir/frames/NNNN.png`` (+ ``out_dir/<kind>.mp4``); returns a summary
    with the rendering pace (``render_seconds``, ``frames_per_second``: the field's work, not the PNG/video
    writing)."""
    scene = trained.scene
    train = scene.split("train")
    poses = trajectory_poses(scene.poses[train], scene.bbox, kind, frames)
    intrinsics = np.repeat(scene.intrinsics[train[:1]], len(poses), axis=0)
    start = time.perf_counter()
    views, semantics, instances = label_cameras(trained, poses, intrinsics, progress, min_segment_fraction=min_segment_fraction, surface=True)
    seconds = time.perf_counter() - start
    depths = np.concatenate([np.zeros(0)] + [v.depth[v.depth > 0] for v in views])
    far = float(np.percentile(depths, 99)) if depths.size else 1.0  # one depth scale for every frame
    pictures = []
    for i, (view, semantic, instance) in enumerate(zip(views, semantics, instances)):
        panels = [color_image(view.rgb), depth_image(view.depth, far), normal_image(view.normal), semantic_image(semantic), instance_image(instance)]
        picture = tile(panels, list(PANELS))
        write_color(out_dir / "frames" / f"{i:04d}.png", picture)
        pictures.append(picture)
    summary = {"trajectory": kind, "frames": len(pictures), "folder": str(out_dir / "frames"),
               "frame_size": list(views[0].rgb.shape[:2]),
               "render_seconds": round(seconds, 3), "frames_per_second": round(len(pictures) / max(seconds, 1e-9), 3)}
    if video:
        summary["video"] = str(write_video(out_dir / f"{kind}.mp4", pictures))
    return summary
