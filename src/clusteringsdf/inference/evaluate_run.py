"""Render a run's split to disk and score it (``clusteringsdf render`` and ``train --eval``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..data.scene import Scene
from ..model.renderer import Renderer
from ..training.run_folder import load_run_identity, write_json_atomic
from .loading import load_trained_run
from .render import render_frames


def render_scene_split(
    renderer: Renderer, scene: Scene, split: str, out_dir: Path, chunk: int, near: float, semantic_from_channels: bool, progress: bool
) -> Path:
    frames = scene.split(split)
    render_frames(
        renderer,
        scene.poses[frames],
        scene.intrinsics[frames],
        scene.hw,
        [scene.frame_names[i] for i in frames],
        out_dir,
        scene.normalization.scale,
        scene.classes.thing_classes,
        scene.classes.stuff_classes,
        chunk,
        near,
        semantic_from_channels=semantic_from_channels,
        progress=progress,
    )
    return out_dir


def render_run(run: Path, device: torch.device, split: str = "test", out_dir: Path | None = None, progress: bool = True) -> Path:
    """Render a trained run's split into ``out_dir`` (default RUN/render_<split>)."""
    trained = load_trained_run(run, device)
    out_dir = out_dir or run / f"render_{split}"
    semantic_from_channels = trained.config.mode == "semantic"
    return render_scene_split(
        trained.renderer, trained.scene, split, out_dir, trained.config.train.render_chunk, trained.config.sampler.near,
        semantic_from_channels, progress,
    )


def evaluate_run(
    run: Path,
    device: torch.device,
    split: str = "test",
    scene: Scene | None = None,
    renderer: Renderer | None = None,
    progress: bool = True,
) -> dict:
    """Render the split into RUN/eval/ and score it; the scores are written to RUN/eval/metrics.json."""
    from ..config import Config
    from ..evaluation import evaluate_predictions

    identity = load_run_identity(run)
    config = Config.from_dict(identity["config"])
    if renderer is None or scene is None:
        trained = load_trained_run(run, device, scene=scene)
        renderer, scene = trained.renderer, trained.scene
    was_training = renderer.training
    renderer.eval()
    out_dir = run / "eval"
    start = time.perf_counter()
    render_scene_split(
        renderer, scene, split, out_dir, config.train.render_chunk, config.sampler.near, config.mode == "semantic", progress
    )
    seconds = time.perf_counter() - start
    renderer.train(was_training)
    scores = evaluate_predictions(Path(identity["scene"]), out_dir, protocol="native", split=split)
    scores["render_seconds"] = round(seconds, 1)
    write_json_atomic(out_dir / "metrics.json", scores)
    return scores
