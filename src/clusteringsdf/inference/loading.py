"""Load a trained run (config, scene, renderer with the latest weights) for inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..data.scene import Scene, load_scene
from ..errors import RunError
from ..model.renderer import Renderer, build_renderer
from ..training.run_folder import latest_checkpoint, load_checkpoint, load_run_config, load_run_identity


@dataclass
class TrainedRun:
    run_dir: Path
    config: Config
    scene: Scene
    renderer: Renderer
    iteration: int


def load_trained_run(run_dir: Path, device: torch.device, scene: Scene | None = None, components=None) -> TrainedRun:
    """Read RUN/config.json, the scene it names and the latest checkpoint's weights."""
    run_dir = Path(run_dir)
    identity = load_run_identity(run_dir)
    config = load_run_config(run_dir)
    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunError(f"{run_dir / 'checkpoints'}: no checkpoint yet (train the run first)")
    if scene is None:
        kwargs = {} if components is None else {"components": components}
        scene = load_scene(identity["scene"], downscale=config.data.downscale, **kwargs)
    state = load_checkpoint(path, device)
    renderer = build_renderer(config, torch.as_tensor(scene.bbox), scene.classes.num_classes).to(device)
    renderer.load_state_dict(state["model"])
    renderer.volume.load_state(state.get("volume"))
    renderer.eval()
    return TrainedRun(run_dir, config, scene, renderer, int(state["iteration"]))
