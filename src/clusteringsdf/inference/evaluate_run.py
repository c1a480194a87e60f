"""Render a run's split to disk and score it (``clusteringsdf render`` and ``train --eval``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.layout import GT_MESH_FILE, frame_sort_key
from ..errors import RunError
from ..files import write_json_atomic
from ..runs import TrainedRun, load_trained_run
from .channels import ObjectMap, object_map
from .render import ViewRender, camera_rays, render_views, write_views


def load_class_run(run: Path, device: torch.device, scene) -> TrainedRun:
    """A run whose classes are merged into another run's instances (the paper's two-run panoptic
    path): it must be a run whose channels are classes (semantic mode)."""
    trained = load_trained_run(run, device, scene=scene)
    if not trained.method.classes_in_channels:
        raise RunError(f"{run}: --semantic-run needs a semantic-mode run, this one was trained with --mode {trained.config.mode}")
    return trained


def channel_objects(trained: TrainedRun) -> ObjectMap:
    """The object of every channel and patch (:func:`object_map`, computed once per run in memory);
    every channel its own object for methods whose channels are classes and with
    ``inference.object_grid`` 0."""
    if trained.object_map is None:
        resolution = trained.config.inference.object_grid
        if resolution and trained.method.uses_opacity and not trained.method.classes_in_channels:
            trained.object_map = object_map(trained.model, trained.method.votes.classes().cpu().numpy(), resolution)
        else:
            trained.object_map = ObjectMap(np.arange(trained.model.field.channels))
    return trained.object_map


def _view_objects(trained: TrainedRun, view: ViewRender, pose: np.ndarray, intrinsics: np.ndarray) -> None:
    """Relabel a view's best and second channels (H, W) as objects (:func:`channel_objects`): the
    best one at the surface point each pixel's depth puts in the scene (patches), the second by its
    channel alone."""
    objects = channel_objects(trained)
    view.channel_second = objects.ids[view.channel_second]
    if objects.patches is None:
        view.channel = objects.ids[view.channel]
        return
    device = trained.model.bbox.device
    rays = camera_rays(torch.as_tensor(pose, dtype=torch.float32, device=device), torch.as_tensor(intrinsics, dtype=torch.float32, device=device),
                       view.channel.shape, trained.model.bbox, near=trained.config.sampler.near)
    points = rays.origins + (torch.as_tensor(view.depth.reshape(-1), device=device) / rays.dz).unsqueeze(-1) * rays.directions
    view.channel = objects.at(view.channel.reshape(-1), points.cpu().numpy()).reshape(view.channel.shape)


def label_cameras(
    trained: TrainedRun,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    progress: bool = True,
    *,
    normals: bool = True,
    class_run: TrainedRun | None = None,
    min_segment_fraction: float | None = None,
    hw: tuple[int, int] | None = None,
    surface: bool = False,
) -> tuple[list[ViewRender], list[np.ndarray], list[np.ndarray]]:
    """Render cameras (poses (F, 4, 4) normalised camera-to-world, intrinsics (F, 3, 3) for images
    of ``hw`` (default: the scene's working size)) and fuse their panoptic labels: (views, semantic
    maps, instance maps).

    ``class_run``: a semantic-mode run whose classes are merged with this run's instance channels
    (the paper's two-run panoptic prediction). ``min_segment_fraction`` overrides the run's
    ``inference.min_segment_fraction``. ``surface``: render each ray at its first surface (fast,
    for trajectories and the viewer; scores are measured on volume rendering).
    """
    config, scene = trained.config, trained.scene
    trained.model.eval()  # a run being labelled is frozen (and eval mode lets the field cache what it can)
    classes = scene.classes
    common = dict(hw=hw or scene.hw, stuff_classes=classes.stuff_classes, chunk=config.inference.render_chunk, near=config.sampler.near, progress=progress, surface=surface)
    views = render_views(trained.model, trained.method, poses, intrinsics, normals=normals, **common)
    for view, pose, k in zip(views, poses, intrinsics):
        _view_objects(trained, view, pose, k)
    class_views = None
    if class_run is not None:
        class_views = render_views(class_run.model, class_run.method, poses, intrinsics, normals=False, desc="semantic run", **common)
    fraction = config.inference.min_segment_fraction if min_segment_fraction is None else min_segment_fraction
    semantics, instances = trained.method.fuse_labels(views, classes.thing_classes, fraction, class_views)
    return views, semantics, instances


def predict_split(
    trained: TrainedRun,
    split: str,
    out_dir: Path,
    progress: bool = True,
    *,
    normals: bool = True,
    class_run: TrainedRun | None = None,
    min_segment_fraction: float | None = None,
    every: int = 1,
) -> Path:
    """Render ``split`` of the run's scene ("all": every frame; every k-th view) and write images +
    panoptic label maps into ``out_dir``."""
    scene = trained.scene
    frames = np.arange(scene.num_frames) if split == "all" else scene.split(split)
    if every > 1:  # the frames the scorer takes: every k-th in its order
        chosen = set(frame_sort_key([scene.frame_names[i] for i in frames])[::every])
        frames = np.array([i for i in frames if scene.frame_names[i] in chosen], dtype=np.int64)
    views, semantics, instances = label_cameras(
        trained, scene.poses[frames], scene.intrinsics[frames], progress, normals=normals, class_run=class_run, min_segment_fraction=min_segment_fraction
    )
    write_views(out_dir, [scene.frame_names[i] for i in frames], views, semantics, instances=instances, scale=scene.normalization.scale)
    return out_dir


def render_run(
    run: Path,
    device: torch.device,
    split: str = "test",
    out_dir: Path | None = None,
    *,
    progress: bool = True,
    semantic_run: Path | None = None,
    min_segment_fraction: float | None = None,
    scene_path: Path | None = None,
) -> Path:
    """Render a trained run's split into ``out_dir`` (default RUN/render_<split>);
    ``min_segment_fraction`` overrides the run's ``inference.min_segment_fraction``. Needs only the
    run folder (its recorded cameras); ``scene_path`` is where the scene is now, when it moved."""
    trained = load_trained_run(run, device, scene_path=scene_path)
    class_run = load_class_run(semantic_run, device, trained.scene) if semantic_run else None
    out_dir = out_dir or run / f"render_{split}"
    return predict_split(trained, split, out_dir, progress, class_run=class_run, min_segment_fraction=min_segment_fraction)


def evaluate_run(
    run: Path,
    device: torch.device,
    split: str = "test",
    trained: TrainedRun | None = None,
    *,
    progress: bool = True,
    semantic_run: Path | None = None,
    out_dir: Path | None = None,
    mesh_resolution: int | None = None,
) -> dict:
    """Render the split into RUN/eval/ (or ``out_dir``) and score it; scores go to <out>/metrics.json.
    ``trained``: the run already in memory (e.g. right after training). When the scene has a GT mesh,
    the run is also meshed into RUN/meshes at ``mesh_resolution`` (default: the run's
    ``inference.eval_mesh_resolution``; 0: not) and its geometry scored."""
    from ..evaluation import evaluate_predictions

    trained = trained or load_trained_run(run, device)
    trained.require_scene()  # scores need the scene's images (and labels)
    class_run = load_class_run(semantic_run, device, trained.scene) if semantic_run else None
    out_dir = out_dir or run / "eval"
    start = time.perf_counter()
    every = trained.config.inference.eval_every
    predict_split(trained, split, out_dir, progress, normals=False, class_run=class_run, every=every)
    seconds = time.perf_counter() - start
    # a scene without ground truth (a prepared capture) gets the scores of its views: PSNR and depth
    scores = evaluate_predictions(trained.scene.root, out_dir, protocol="native", split=split, every=every)
    if every > 1:
        scores["eval_every"] = every
    scores["render_seconds"] = round(seconds, 1)
    scores["channels"] = trained.method.votes.usage()
    if semantic_run:
        scores["semantic_run"] = str(semantic_run)
    resolution = trained.config.inference.eval_mesh_resolution if mesh_resolution is None else mesh_resolution
    if resolution and (trained.scene.root / GT_MESH_FILE).is_file():
        scores["geometry"] = score_geometry(trained, run / "meshes", resolution)
    write_json_atomic(out_dir / "metrics.json", scores)
    return scores


def score_geometry(trained: TrainedRun, mesh_dir: Path, resolution: int) -> dict:
    """Mesh the run into ``mesh_dir`` and score it against the scene's GT mesh: the full scores go to
    ``mesh_dir/geometry.json``, the headline figures (:func:`summarize_geometry`) are returned."""
    from ..evaluation.geometry import evaluate_meshes, summarize_geometry
    from .mesh import extract_meshes

    start = time.perf_counter()
    extract_meshes(trained, mesh_dir, resolution=resolution)
    geometry = evaluate_meshes(trained.scene.root, mesh_dir)
    write_json_atomic(mesh_dir / "geometry.json", geometry)
    return {**summarize_geometry(geometry), "mesh_resolution": resolution, "seconds": round(time.perf_counter() - start, 1)}
