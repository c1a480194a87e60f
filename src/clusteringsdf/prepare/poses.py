"""Which pose source runs, the fall-back from SfM to RGB-D tracking, and the scale of the result.

* ``auto``: structure-from-motion (key frames first for long captures); with depth, RGB-D
  tracking instead when SfM registers under :data:`SFM_MIN_SHARE_WITH_DEPTH` of the frames or
  splits them over several models; with depth and known intrinsics, the SfM poses (made metric)
  then guide RGB-D tracking, which refines them (``sfm+rgbd``).
* ``sfm``: structure-from-motion only; ``rgbd``: RGB-D tracking only (needs depth and intrinsics).
* ``colmap``, ``transforms``, ``scannet``: imported poses (:mod:`.pose_import`).

Scale: RGB-D tracking and ScanNet poses are metric; transforms.json poses are used as they are.
SfM and COLMAP models (arbitrary scale by nature) are made metric with depth: the median ratio of
sensor depth to triangulated depth over all keypoints with a 3D point. Without depth they are scaled so that the 98th percentile of the keypoints' depths is
:data:`ARBITRARY_FAR_DEPTH` units, so that the camera frusta up to 5 units that ``load_scene``
normalises by (without depth) hold the scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data import layout
from ..errors import ClusteringSDFError
from .cameras import PoseResult
from .colmap import structure_from_motion
from .depth import DepthFrames
from .frames import StagedFrames
from .pose_import import import_colmap, import_scannet, import_transforms, poses_from_colmap_model
from .rgbd_odometry import track_rgbd

__all__ = ["POSE_METHODS", "estimate_poses", "ARBITRARY_FAR_DEPTH", "SFM_MIN_SHARE_WITH_DEPTH"]

POSE_METHODS = ("auto", "sfm", "rgbd", "colmap", "transforms", "scannet")
SFM_MIN_SHARE_WITH_DEPTH = 0.9
ARBITRARY_FAR_DEPTH = 4.0
EXHAUSTIVE_MAX_FRAMES = 50
# Above EXHAUSTIVE_MAX_FRAMES frames, SfM maps every KEYFRAME_STRIDE-th frame first and registers the
# rest into that model. On the 100-frame synthetic walk-through (5-7 cm and <= 7 degrees between
# frames), mapping all frames at once split them over 5-7 models (largest: 63 frames with exhaustive,
# 29 with sequential matching); every 2nd frame first registered all 100 with either matching. A
# stride of 2 keeps the pairs of sequential matching's quadratic overlap (i+2, i+4, ..., i+64)
# among the key frames; with a stride of 3 the key frames alone did not initialise.
KEYFRAME_STRIDE = 2


def _sfm(frames: StagedFrames, work: Path, matching: str, k: np.ndarray | None, *, threads: int, log) -> tuple[PoseResult, str, bool]:
    """SfM poses, the matching statistics as words, and whether another model holds frames the largest lacks."""
    if matching == "auto":
        matching = "exhaustive" if len(frames.names) <= EXHAUSTIVE_MAX_FRAMES and not frames.source.startswith("video") else "sequential"
    params = None
    model = "SIMPLE_RADIAL"
    if k is not None:  # known pinhole intrinsics, COLMAP pixel convention
        model, params = "PINHOLE", [k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5]
    log(f"poses: structure-from-motion on {len(frames.names)} frames (SIFT, {matching} matching, incremental mapper) ...")
    stride = KEYFRAME_STRIDE if len(frames.names) > EXHAUSTIVE_MAX_FRAMES else 1
    colmap_model = structure_from_motion(frames.folder, [f"{n}.png" for n in frames.names], work, matching, camera_model=model,
                                         camera_params=params, threads=threads, keyframe_stride=stride)
    stats = colmap_model.matching
    why = (f"median {stats.get('median_features', 0):.0f} SIFT features per frame, "
           f"{stats.get('pairs_verified', 0)} of {stats.get('pairs_matched', 0)} image pairs verified")
    if not colmap_model.cam_from_world:
        return PoseResult({}, np.eye(3), "sfm", False, {n: "not registered" for n in frames.names}), why, False
    result = poses_from_colmap_model(colmap_model, frames.names, frames.hw, work, path=frames.folder, source="sfm")
    sizes = [len(m) for m in colmap_model.models]
    result.notes.append(f"SfM: {len(result.poses)} of {len(frames.names)} frames registered in the largest of {len(sizes)} model(s) {sizes}; {why}")
    largest = set(colmap_model.models[0]) if colmap_model.models else set()
    outside = {name for other in colmap_model.models[1:] for name in other} - largest
    return result, why, len(outside) >= max(2, 0.05 * len(frames.names))


def _metric_scale(result: PoseResult, depth: DepthFrames) -> tuple[float, int]:
    """Median sensor / triangulated depth over the keypoints of the registered frames."""
    ratios = []
    for name, obs in (result.observations or {}).items():
        if name not in result.poses or len(obs) == 0:
            continue
        sensor = depth.read(name)
        u = np.rint(obs[:, 0]).astype(np.int64)
        v = np.rint(obs[:, 1]).astype(np.int64)
        inside = (u >= 0) & (u < sensor.shape[1]) & (v >= 0) & (v < sensor.shape[0]) & (obs[:, 2] > 0)
        measured = sensor[v[inside], u[inside]]
        ok = measured > 0
        ratios.append(measured[ok] / obs[inside, 2][ok])
    values = np.concatenate(ratios) if ratios else np.zeros(0)
    if values.size < 20:
        raise ClusteringSDFError(f"cannot fix the metric scale from depth: only {values.size} keypoints have sensor depth")
    return float(np.median(values)), int(values.size)


def _scale_poses(result: PoseResult, scale: float) -> None:
    """Scale the world (camera centres) and the depths of the keypoints' 3D points with it."""
    for pose in result.poses.values():
        pose[:3, 3] *= scale
    for obs in (result.observations or {}).values():
        obs[:, 2] *= scale


def _rgbd(frames: StagedFrames, depth: DepthFrames, k: np.ndarray, *, log, initial: dict[str, np.ndarray] | None = None) -> PoseResult:
    """RGB-D tracking of ``frames``; ``initial``: metric poses by frame name (SfM) to guide it."""
    from PIL import Image

    guided = " from the SfM poses" if initial else ""
    log(f"poses: RGB-D tracking{guided} on {len(frames.names)} frames (Open3D odometry and ICP, loop closures, pose graph) ...")
    colors = [np.asarray(Image.open(frames.path(n)).convert("RGB")) for n in frames.names]
    depths = [depth.read(n) for n in frames.names]
    by_index = {i: initial[n] for i, n in enumerate(frames.names) if n in initial} if initial else None
    track = track_rgbd(colors, depths, k, initial=by_index, log=log)
    poses = {frames.names[i]: pose for i, pose in track.poses.items()}
    unregistered = {frames.names[i]: why for i, why in track.failed.items()}
    result = PoseResult(poses, np.asarray(k, dtype=np.float64), "rgbd", metric=True, unregistered=unregistered)
    result.notes.append(f"RGB-D tracking: {len(poses)} of {len(frames.names)} frames, {track.loop_closures} loop closures, "
                        f"mean depth agreement {track.mean_fitness:.2f}")
    return result


def _refined_with_depth(sfm: PoseResult, frames: StagedFrames, depth: DepthFrames, k: np.ndarray, *, log) -> PoseResult:
    """SfM poses made metric, refined by RGB-D tracking that starts from them (its odometry, ICP and
    loop closures align the depth of overlapping frames: about ten times more precise than SfM's
    keypoints on the synthetic captures of docs/results.md). The SfM poses stay when the tracking
    registers fewer frames."""
    refined = _rgbd(frames, depth, k, log=log, initial=sfm.poses)
    if len(refined.poses) < len(sfm.poses):
        sfm.notes.append(f"RGB-D refinement registered {len(refined.poses)} of the {len(sfm.poses)} SfM frames: kept the SfM poses")
        return sfm
    # the tracked poses start at the first frame; carry them into the SfM world frame (metric)
    first = min(refined.poses, key=frames.names.index)
    to_sfm = sfm.poses[first] @ np.linalg.inv(refined.poses[first])
    refined.poses = {n: to_sfm @ pose for n, pose in refined.poses.items()}
    refined.notes = sfm.notes + ["refined by RGB-D tracking from the SfM poses: " + refined.notes[-1]]
    refined.observations, refined.k, refined.source, refined.undistort_map = sfm.observations, sfm.k, "sfm+rgbd", sfm.undistort_map
    refined.unregistered = {n: why for n, why in sfm.unregistered.items() if n not in refined.poses}
    return refined


def default_poses_path(method: str, images: Path | None) -> Path | None:
    """Where imported poses are looked for when no path is given: beside the image folder."""
    if images is None:
        return None
    return poses_path_in(method, Path(images).resolve().parent)


def poses_path_in(method: str, folder: Path) -> Path | None:
    """Where ``method``'s imported poses are looked for in ``folder``: ``sparse/0`` or ``sparse``
    (colmap), ``transforms.json`` (transforms), the folder itself (scannet: ``pose/`` and
    ``intrinsic/``); None for the methods that estimate poses."""
    candidates = {
        "colmap": [folder / "sparse" / "0", folder / "sparse"],
        "transforms": [folder / "transforms.json"],
        "scannet": [folder],
    }.get(method, [])
    return next((c for c in candidates if c.exists()), candidates[0] if candidates else None)


def estimate_poses(
    method: str,
    frames: StagedFrames,
    work: Path,
    depth: DepthFrames | None = None,
    *,
    intrinsics: Path | None = None,
    poses_path: Path | None = None,
    matching: str = "auto",
    min_registered: float = 0.5,
    threads: int = 2,
    log: Callable[[str], None] = print,
) -> PoseResult:
    """Poses of ``frames`` by ``method`` (one of :data:`POSE_METHODS`); see the module docstring.

    Raises:
        ClusteringSDFError / DataError: one line: a missing input, or too few frames registered
            (how many, and the matching statistics that explain why).
    """
    if method not in POSE_METHODS:
        raise ValueError(f"unknown pose method '{method}'")
    k = layout.read_intrinsics(Path(intrinsics)) if intrinsics is not None else None
    total = len(frames.names)
    why = ""  # SfM matching statistics, for the messages
    if method in ("colmap", "transforms", "scannet"):
        if poses_path is None:
            what = {"colmap": "a sparse model folder", "transforms": "a transforms.json", "scannet": "a folder with pose/ and intrinsic/"}[method]
            raise ClusteringSDFError(f"--poses {method} needs --poses-path ({what})")
        if method == "colmap":
            result = import_colmap(poses_path, frames.names, frames.hw, work)
        elif method == "transforms":
            result = import_transforms(poses_path, frames.names, frames.hw, work)
        else:
            result = import_scannet(poses_path, frames.names, frames.hw)
    elif method == "rgbd":
        if depth is None:
            raise ClusteringSDFError("--poses rgbd needs --depth DIR")
        if k is None:
            raise ClusteringSDFError("--poses rgbd needs the camera intrinsics: --intrinsics K.txt (a 3x3 or 4x4 matrix at the image size)")
        result = _rgbd(frames, depth, k, log=log)
    else:
        result, why, split = _sfm(frames, work, matching, k, threads=threads, log=log)
        share = len(result.poses) / total
        if method == "auto" and depth is not None and (share < SFM_MIN_SHARE_WITH_DEPTH or split):
            reason = f"SfM registered {len(result.poses)} of {total} frames" + (" and split them over several models" if split else "")
            if k is None and len(result.poses) >= 0.2 * total:
                k = result.k
            if k is None:
                raise ClusteringSDFError(f"{reason} ({why}); the RGB-D fall-back needs the camera intrinsics: give --intrinsics K.txt")
            log(f"poses: {reason} ({why}); falling back to RGB-D tracking")
            result = _rgbd(frames, depth, k, log=log)
            result.notes.insert(0, f"{reason}: used RGB-D tracking instead")
    registered, needed = len(result.poses), max(3, int(np.ceil(min_registered * total)))
    if registered < needed:
        if result.source == "sfm":
            why = (f" ({why}): plain surfaces, blur or too little overlap between frames leave SIFT too little to match "
                   "(give --depth DIR --intrinsics K.txt for RGB-D tracking, or film more slowly with more texture in view)")
        elif result.source == "rgbd":
            why = ": consecutive frames did not overlap in depth (move more slowly, or check --depth-scale and --intrinsics)"
        else:
            why = ": the other frames have no pose in the imported file"
        raise ClusteringSDFError(f"too few frames registered: {registered} of {total} (at least {needed} needed){why}")
    has_points = result.observations is not None and any(len(obs) for obs in result.observations.values())
    if not result.metric and has_points:
        if depth is not None:
            scale, count = _metric_scale(result, depth)
            _scale_poses(result, scale)
            result.metric = True
            result.notes.append(f"metric scale from sensor depth at {count} keypoints: {scale:.4g} m per SfM unit")
            if method == "auto" and result.source == "sfm" and k is not None:
                result = _refined_with_depth(result, frames, depth, k, log=log)
        else:
            depths = np.concatenate([obs[:, 2] for name, obs in result.observations.items() if name in result.poses and len(obs)])
            scale = ARBITRARY_FAR_DEPTH / float(np.percentile(depths, 98))
            _scale_poses(result, scale)
            result.notes.append(f"no depth: arbitrary scale (98% of the SfM points within {ARBITRARY_FAR_DEPTH:g} units of the cameras)")
    return result
