"""Render a run's split to disk and score it (``clusteringsdf render`` and ``train --eval``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.scene import Scene
from ..model.renderer import Renderer
from ..training.run_folder import load_run_config, load_run_identity, write_json_atomic
from .loading import load_trained_run
from .render import ViewRender, panoptic_labels, render_views, write_views


def label_cameras(
    renderer: Renderer,
    config: Config,
    scene: Scene,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    progress: bool = True,
    normals: bool = True,
    semantic_renderer: Renderer | None = None,
) -> tuple[list[ViewRender], list[np.ndarray], list[np.ndarray]]:
    """Render cameras (poses (F, 4, 4) normalised camera-to-world, intrinsics (F, 3, 3)) at the
    scene's working size and fuse their panoptic labels: (views, semantic maps, instance maps).

    ``semantic_renderer``: a semantic-mode run whose classes are merged with this run's instance
    channels (the paper's two-run panoptic prediction).
    """
    classes = scene.classes
    common = dict(hw=scene.hw, stuff_classes=classes.stuff_classes, chunk=config.train.render_chunk, near=config.sampler.near, progress=progress)
    was_training = renderer.training
    renderer.eval()
    views = render_views(
        renderer,
        poses,
        intrinsics,
        normals=normals,
        embedding=config.mode == "contrastive",
        classes_from_channels=config.mode == "semantic",
        **common,
    )
    renderer.train(was_training)
    semantic_views = None
    if semantic_renderer is not None:
        semantic_renderer.eval()
        semantic_views = render_views(semantic_renderer, poses, intrinsics, normals=False, classes_from_channels=True, desc="semantic run", **common)
    voted = renderer.channel_classes().cpu().numpy()
    semantics, instances = panoptic_labels(
        views, config.mode, classes.thing_classes, voted, semantic_views, config.inference.min_segment_fraction
    )
    return views, semantics, instances


def predict_split(
    renderer: Renderer,
    config: Config,
    scene: Scene,
    split: str,
    out_dir: Path,
    progress: bool = True,
    normals: bool = True,
    semantic_renderer: Renderer | None = None,
) -> Path:
    """Render ``split`` of ``scene`` and write images + panoptic label maps into ``out_dir``."""
    frames = scene.split(split)
    views, semantics, instances = label_cameras(
        renderer, config, scene, scene.poses[frames], scene.intrinsics[frames], progress, normals, semantic_renderer
    )
    write_views(out_dir, [scene.frame_names[i] for i in frames], views, semantics, instances, scene.normalization.scale)
    return out_dir


def render_run(
    run: Path,
    device: torch.device,
    split: str = "test",
    out_dir: Path | None = None,
    progress: bool = True,
    semantic_run: Path | None = None,
    min_segment_fraction: float | None = None,
) -> Path:
    """Render a trained run's split into ``out_dir`` (default RUN/render_<split>);
    ``min_segment_fraction`` overrides the run's ``inference.min_segment_fraction``."""
    trained = load_trained_run(run, device)
    if min_segment_fraction is not None:
        trained.config.inference.min_segment_fraction = min_segment_fraction
    semantic = load_trained_run(semantic_run, device, scene=trained.scene).renderer if semantic_run else None
    out_dir = out_dir or run / f"render_{split}"
    return predict_split(trained.renderer, trained.config, trained.scene, split, out_dir, progress, semantic_renderer=semantic)


def evaluate_run(
    run: Path,
    device: torch.device,
    split: str = "test",
    scene: Scene | None = None,
    renderer: Renderer | None = None,
    progress: bool = True,
    semantic_run: Path | None = None,
    out_dir: Path | None = None,
) -> dict:
    """Render the split into RUN/eval/ (or ``out_dir``) and score it; scores go to <out>/metrics.json."""
    from ..evaluation import evaluate_predictions

    identity = load_run_identity(run)
    config = load_run_config(run)
    if renderer is None or scene is None:
        trained = load_trained_run(run, device, scene=scene)
        renderer, scene = trained.renderer, trained.scene
    semantic = load_trained_run(semantic_run, device, scene=scene).renderer if semantic_run else None
    out_dir = out_dir or run / "eval"
    start = time.perf_counter()
    predict_split(renderer, config, scene, split, out_dir, progress, normals=False, semantic_renderer=semantic)
    seconds = time.perf_counter() - start
    scores = evaluate_predictions(Path(identity["scene"]), out_dir, protocol="native", split=split)
    scores["render_seconds"] = round(seconds, 1)
    if semantic_run:
        scores["semantic_run"] = str(semantic_run)
    write_json_atomic(out_dir / "metrics.json", scores)
    return scores
