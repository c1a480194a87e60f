"""``clusteringsdf prepare``: a capture (images or a video, optional depth) -> a scene folder.

Frames -> poses (SfM, RGB-D tracking or imported) -> depth (the sensor's; without it, a depth
model's or the SfM points' interpolated) -> undistortion to one pinhole camera -> masks (a
segmenter or imported masks) -> the Panoptic Lifting layout that ``info``/``train`` read, written
in a temporary folder and moved into place when complete. ``OUT/prepare.json`` records what was
used (pose source, scale, unregistered frames, depth source, segmenter) and the timings.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import UsageError
from .cameras import PoseResult, remap
from .depth import DepthFrames, open_depth
from .frames import StagedFrames, stage_images, stage_video
from .mask_import import MASK_FORMATS, MaskImporter
from .mono_depth import MONO_DEPTH_OUTPUTS, MonoDepthFrames, MonoDepthModel
from .poses import POSE_METHODS, default_poses_path, estimate_poses
from .segmenters import SEGMENTERS, build_segmenter, class_agnostic_data, class_agnostic_semantics
from .sparse_depth import SfmDepthFrames
from .writer import SceneWriter

__all__ = ["PrepareOptions", "PrepareResult", "prepare_scene"]


@dataclass
class PrepareOptions:
    """Everything ``prepare`` takes (the CLI flags of the same names); validated on creation."""

    out: Path
    images: Path | None = None
    video: Path | None = None
    depth: Path | None = None
    depth_scale: float = 1000.0
    depth_intrinsics: str | None = None
    depth_to_color: Path | None = None
    color_to_depth: Path | None = None
    mono_depth: str | Path | None = None
    mono_depth_output: str = "auto"
    point_depth: bool = True
    intrinsics: Path | None = None
    poses: str = "auto"
    poses_path: Path | None = None
    matching: str = "auto"
    segmenter: str = "classical"
    segmenter_weights: str | Path | None = None
    masks: Path | None = None
    masks_format: str | None = None
    every: int | None = None
    fps: float | None = None
    blur_ratio: float = 0.5
    max_size: int | None = None
    test_every: int = 4
    min_registered: float = 0.5
    device: str = "cpu"
    threads: int = 2
    keep_work: bool = False

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise UsageError(f"prepare: {message}")

        if (self.images is None) == (self.video is None):
            fail("give exactly one of --images DIR or --video FILE")
        if self.video is not None and self.depth is not None:
            fail("--depth needs --images (depth files are matched to image names)")
        if self.images is not None and (self.every is not None or self.fps is not None):
            fail("--every and --fps sample a --video")
        if self.every is not None and self.fps is not None:
            fail("give --every or --fps, not both")
        if self.every is not None and self.every < 1 or self.fps is not None and self.fps <= 0:
            fail("--every must be >= 1 and --fps > 0")
        if self.poses not in POSE_METHODS:
            fail(f"--poses must be one of {', '.join(POSE_METHODS)}")
        if self.matching not in ("auto", "sequential", "exhaustive"):
            fail("--matching must be auto, sequential or exhaustive")
        if self.segmenter not in SEGMENTERS:
            fail(f"--segmenter must be one of {', '.join(SEGMENTERS)}")
        if self.segmenter == "import":
            if self.masks is None or self.masks_format is None:
                fail(f"--segmenter import needs --masks DIR and --masks-format ({', '.join(MASK_FORMATS)})")
            if self.masks_format not in MASK_FORMATS:
                fail(f"--masks-format must be one of {', '.join(MASK_FORMATS)}")
        elif self.masks is not None:
            fail("--masks needs --segmenter import")
        depth_camera = [f for f, v in (("--depth-intrinsics", self.depth_intrinsics), ("--depth-to-color", self.depth_to_color),
                                       ("--color-to-depth", self.color_to_depth)) if v is not None]
        if depth_camera and self.depth is None:
            fail(f"{depth_camera[0]} describes the depth camera of --depth DIR: give --depth")
        if self.depth_to_color is not None and self.color_to_depth is not None:
            fail("give --depth-to-color or its inverse --color-to-depth, not both")
        if depth_camera and self.intrinsics is None:
            fail(f"{depth_camera[0]}: reprojecting depth into the colour camera needs the colour intrinsics: give --intrinsics K.txt")
        if self.mono_depth is not None and (self.depth is not None or self.poses not in ("auto", "sfm", "colmap")):
            fail("--mono-depth is fitted to structure-from-motion points: it takes no --depth and needs --poses auto, sfm or colmap")
        if self.mono_depth_output not in MONO_DEPTH_OUTPUTS:
            fail(f"--mono-depth-output must be one of {', '.join(MONO_DEPTH_OUTPUTS)}")
        if self.segmenter_weights is not None and self.segmenter not in ("mask2former", "sam"):
            fail("--segmenter-weights is for --segmenter mask2former or sam")
        if self.test_every == 1 or self.test_every < 0:
            fail("--test-every must be 0 (no test split) or at least 2")
        if not 0.0 < self.min_registered <= 1.0 or self.depth_scale <= 0 or not 0.0 <= self.blur_ratio < 1.0:
            fail("--min-registered must be in (0, 1], --depth-scale positive, --blur-ratio in [0, 1)")
        if self.max_size is not None and self.max_size < 16:
            fail("--max-size must be at least 16 pixels")


@dataclass
class PrepareResult:
    """The written scene, its frame count, the pose source, the frames left out and stage timings (s)."""

    root: Path
    frames: int
    pose_source: str
    class_agnostic: bool
    unregistered: dict[str, str]
    timings: dict[str, float]


def capture_warnings(options: PrepareOptions, pose_source: str, metric: bool) -> list[str]:
    """One line for each weak point of the scene that ``options`` and the poses make: masks from
    colour alone (classical, no depth) and a scale that is not metres (no depth, no metric poses)."""
    warnings = []
    if options.segmenter == "classical" and options.depth is None:
        warnings.append("warning: classical masks from colour alone are class-agnostic and the least reliable; add --depth DIR, "
                        "a learned segmenter (--segmenter mask2former --segmenter-weights DIR) or your own masks (--segmenter import "
                        "--masks DIR --masks-format FORMAT)")
    if not metric and options.depth is None:
        if pose_source == "transforms":
            warnings.append("warning: no depth: the scene keeps the unit of transforms.json, metres only if its poses are; "
                            "add --depth DIR for a metric scale")
        else:
            warnings.append("warning: no depth and no metric poses: the scene's unit is arbitrary, so its meshes and depths are not in "
                            "metres; add --depth DIR, or import metric poses (--poses scannet), for a metric scale")
    return warnings


def _announce_poses(poses: PoseResult, options: PrepareOptions, log: Callable[[str], None], warn: Callable[[str], None]) -> list[str]:
    """Log the pose notes and the frames left out, warn of the capture's weak points (returned)."""
    for note in poses.notes:
        log(f"poses: {note}")
    if poses.unregistered:
        listed = ", ".join(sorted(poses.unregistered)[:10]) + (" ..." if len(poses.unregistered) > 10 else "")
        log(f"poses: {len(poses.unregistered)} frames left out (no pose): {listed}")
    warnings = capture_warnings(options, poses.source, poses.metric)
    for line in warnings:
        warn(line)
    return warnings


def _depth_report(depth: DepthFrames | MonoDepthFrames | SfmDepthFrames | None, log: Callable[[str], None], warn: Callable[[str], None]) -> dict:
    """``prepare.json``'s entries on the depth: ``depth_source`` (sensor, mono, sfm or none) and, for
    monocular depth, how its per-frame fits went (logged; frames left without depth warned of)."""
    if isinstance(depth, SfmDepthFrames):
        summary = depth.summary()
        log(f"depth: interpolated from the SfM points (median {100 * summary['median_pixel_share']:.0f}% of the pixels; "
            f"{len(summary['frames_without_depth'])} frames without)")
        return {"depth_source": "sfm", "depth": summary}
    if not isinstance(depth, MonoDepthFrames):
        return {"depth_source": "none" if depth is None else "sensor"}
    summary = depth.summary()
    log(f"depth: monocular ({summary['model']}, {summary['output']}) fitted to the SfM points of {summary['frames_fitted']} of "
        f"{len(depth.fits)} frames (median {summary['median_points']:.0f} points, {100 * summary['median_inlier_share']:.0f}% inliers)")
    if summary["frames_without_depth"]:
        warn(f"warning: monocular depth: {len(summary['frames_without_depth'])} frames have too few SfM points agreeing with the "
             "model's depth and were written without depth")
    return {"depth_source": "mono", "depth": summary}


MAX_SPARSE_POINTS = 200_000


def sparse_points(poses) -> np.ndarray | None:
    """The SfM points of a capture posed by structure-from-motion (:func:`sparse_world_points`), or
    None when the poses come without them or none has a depth."""
    points = sparse_world_points(poses.observations or {}, poses.poses, poses.k)
    return points if len(points) else None


def sparse_world_points(observations: dict[str, np.ndarray], poses: dict[str, np.ndarray], k: np.ndarray) -> np.ndarray:
    """World points (N, 3) of the structure-from-motion keypoints: each registered frame's
    observations (n, 3) = (u, v, depth) back-projected with the pinhole ``k`` (3, 3) and the frame's
    camera-to-world pose (4, 4); at most :data:`MAX_SPARSE_POINTS`, evenly subsampled. The
    keypoints are in the original image, so lens distortion shifts them by a few pixels: precise
    enough for the scene box they are written for."""
    clouds = []
    for name, obs in observations.items():
        if name not in poses or len(obs) == 0:
            continue
        u, v, z = obs[:, 0], obs[:, 1], obs[:, 2]
        keep = z > 0
        camera = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=-1)[keep]
        clouds.append(camera @ poses[name][:3, :3].T + poses[name][:3, 3])
    points = np.concatenate(clouds) if clouds else np.zeros((0, 3))
    return points[:: max(1, len(points) // MAX_SPARSE_POINTS)]


def _scene_depth(depth: DepthFrames | None, mono: MonoDepthModel | None, frames: StagedFrames, poses: PoseResult, *, point_depth: bool):
    """The frames' depth for the scene: the sensor's (``depth``), a depth model's fitted to the SfM
    points, or (colour only, unless not ``point_depth``) the SfM points' interpolated; None without."""
    if mono is not None:
        return MonoDepthFrames(mono, frames, poses.observations)
    if depth is None and point_depth and SfmDepthFrames.usable(poses.observations):
        return SfmDepthFrames(frames, poses.observations)
    return depth


def prepare_scene(options: PrepareOptions, log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> PrepareResult:
    """Run ``prepare`` (see the module docstring). Raises ClusteringSDFError with one line on bad
    input. ``warn`` (default ``log``) gets the lines of :func:`capture_warnings` once the poses are
    known; they are also recorded in ``prepare.json``."""
    warn = warn or log
    start = time.perf_counter()
    timings: dict[str, float] = {}
    writer = SceneWriter(options.out)
    try:
        # masks source first: a missing checkpoint fails before minutes of SfM
        importer = MaskImporter(options.masks, options.masks_format) if options.segmenter == "import" else None
        segmenter = None if importer is not None else build_segmenter(options.segmenter, options.segmenter_weights, options.device)
        classes = importer.classes if importer is not None else segmenter.classes
        mono = MonoDepthModel(options.mono_depth, options.mono_depth_output, options.device) if options.mono_depth is not None else None

        if options.images is not None:
            frames = stage_images(options.images, writer.work / "frames", options.max_size, log)
        else:
            frames = stage_video(options.video, writer.work / "frames", options.every, options.fps,
                                 blur_ratio=options.blur_ratio, max_size=options.max_size, log=log)
        depth = None if options.depth is None else open_depth(
            options.depth, frames.names, frames.hw, depth_scale=options.depth_scale, intrinsics=options.intrinsics,
            depth_intrinsics=options.depth_intrinsics, depth_to_color=options.depth_to_color, color_to_depth=options.color_to_depth)
        timings["frames"] = time.perf_counter() - start

        t0 = time.perf_counter()
        poses_path = options.poses_path or default_poses_path(options.poses, options.images)
        poses = estimate_poses(
            options.poses, frames, writer.work, depth, intrinsics=options.intrinsics, poses_path=poses_path, matching=options.matching,
            min_registered=options.min_registered, threads=options.threads, log=log,
        )
        timings["poses"] = time.perf_counter() - t0
        warnings = _announce_poses(poses, options, log, warn)
        depth = _scene_depth(depth, mono, frames, poses, point_depth=options.point_depth)

        t0 = time.perf_counter()
        names = [n for n in frames.names if n in poses.poses]
        grid = poses.undistort_map
        for index, name in enumerate(names):
            rgb = remap(np.asarray(Image.open(frames.path(name)).convert("RGB")), grid, order=1)
            depth_m = remap(depth.read(name), grid, order=0) if depth is not None else None
            writer.frame(name, rgb, poses.poses[name], depth_m)
            if importer is not None:  # masks of the original images: undistorted like the colour
                masks, grid_masks = importer.read(name, frames.hw), grid
            else:  # the segmenter saw the undistorted frame (depth from SfM points is too coarse for its depth edges)
                masks, grid_masks = segmenter.segment(rgb, None if isinstance(depth, SfmDepthFrames) else depth_m, poses.k), None
            instance = remap(masks.instance.astype(np.int32), grid_masks, order=0)
            confidence = remap(masks.confidence.astype(np.float32), grid_masks, order=1) if masks.confidence is not None else None
            if classes is None:
                labelled = remap(masks.labelled.astype(np.uint8), grid_masks, order=0) > 0 if masks.labelled is not None else None
                semantics = class_agnostic_semantics(instance, labelled)
            else:
                semantics = remap(masks.semantics.astype(np.int32), grid_masks, order=0)
            writer.masks(name, semantics, instance, confidence)
            if (index + 1) % 25 == 0 or index + 1 == len(names):
                log(f"masks: {index + 1}/{len(names)} frames ({options.segmenter})")
        timings["masks_and_writing"] = time.perf_counter() - t0

        test = names[:: options.test_every] if options.test_every else []
        splits = {"train": [n for n in names if n not in set(test)], "test": test}
        segmentation_data = classes.segmentation_data() if classes is not None else class_agnostic_data()
        timings["total"] = time.perf_counter() - start
        report = {
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "frames": {"source": frames.source, "count": len(frames.names), "dropped": frames.dropped, "size": [frames.hw[1], frames.hw[0]]},
            "poses": {"source": poses.source, "metric": poses.metric, "registered": len(names), "unregistered": poses.unregistered,
                      "undistorted": grid is not None, "notes": poses.notes},
            "masks": {"segmenter": options.segmenter, "class_agnostic": classes is None},
            **_depth_report(depth, log, warn),
            "warnings": warnings,
            "timings_s": {k: round(v, 2) for k, v in timings.items()},
        }
        writer.scene_files(poses.k, splits, segmentation_data, report, points=sparse_points(poses) if depth is None or isinstance(depth, SfmDepthFrames) else None)
        root = writer.commit(options.keep_work)
    except BaseException:
        writer.abort()
        raise
    log(f"wrote {root}: {len(names)} frames ({len(splits['test'])} test), poses from {poses.source}"
        f"{' (metric)' if poses.metric else ' (arbitrary scale)'}, masks from {options.segmenter} ({timings['total']:.0f} s)")
    return PrepareResult(root, len(names), poses.source, classes is None, poses.unregistered, timings)
