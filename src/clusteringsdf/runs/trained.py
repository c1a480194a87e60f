"""Building a run's model and method from its config, and loading a trained run for inference.

Checkpoints written before the model/method split (one ``model`` state of the old ``Renderer`` with
the label votes and the contrastive EMA head in it, and the cached SDF volume under a separate
``volume`` key) are converted on load, so old run folders still render, mesh and report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data.scene import Scene, load_scene
from ..errors import RunError
from ..methods import Method, method_class
from ..model import Model
from .folder import latest_checkpoint, load_checkpoint, load_run_config, load_run_identity

CHECKPOINT_FORMAT = 2  # 2: separate "model" and "method" states; 1 (no key): the old Renderer state


def initial_object_radius(scene: Scene, config: Config) -> float:
    """Object channels start as one sphere at the origin that holds no camera: half the closest
    camera's distance to the origin, at most half the background radius, at least 0.02."""
    closest = float(np.linalg.norm(scene.poses[:, :3, 3], axis=-1).min())
    return float(np.clip(0.5 * closest, 0.02, 0.5 * config.field.init_radius))


def build_model_and_method(config: Config, scene: Scene, device: torch.device) -> tuple[Model, Method]:
    """A fresh model and method for a scene (random initialisation from the current torch seed)."""
    num_classes = scene.classes.num_classes
    method_type = method_class(config.mode)
    channels = method_type.channel_count(config, num_classes)
    model = Model(config, torch.as_tensor(scene.bbox), num_classes, channels, object_radius=initial_object_radius(scene, config))
    method = method_type(config, num_classes, channels)  # after the model: the model's initialisation comes first
    return model.to(device), method.to(device)


def upgrade_checkpoint(state: dict[str, Any], method: Method) -> dict[str, Any]:
    """A checkpoint in the current format (format 1 is converted, see the module docstring)."""
    if "method" in state:
        return state
    model_state, method_state = {}, {}
    wanted = set(method.state_dict())
    for key, value in state["model"].items():
        if key == "channel_votes":
            method_state["votes.votes"] = value
        elif key.startswith("slow_embedding_head."):
            if key in wanted:
                method_state[key] = value
        else:
            model_state[key] = value
    volume = state.get("volume")
    bbox = model_state["bbox"]
    model_state["volume.bbox"] = bbox.clone()
    if volume is None:
        model_state["volume.ready"] = torch.tensor(False)
    else:
        model_state["volume.values"] = volume
        model_state["volume.ready"] = torch.tensor(True)
    return {**state, "model": model_state, "method": method_state, "format": CHECKPOINT_FORMAT}


def load_states(model: Model, method: Method, state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Load a checkpoint's model and method states (upgrading an old checkpoint); returns the
    upgraded checkpoint. A checkpoint of another network shape is a one-line RunError."""
    state = upgrade_checkpoint(state, method)
    model_state = dict(state["model"])
    if "volume.values" not in model_state:  # a volume never evaluated: keep this model's zeros
        model_state["volume.values"] = model.volume.values
    try:
        model.load_state_dict(model_state)
        method.load_state_dict(state["method"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(f"{path}: does not fit this run's network ({first}); was config.json edited after training?") from None
    return state


@dataclass
class TrainedRun:
    """A run ready for inference: its folder, config, scene, model and method (eval mode)."""

    run_dir: Path
    config: Config
    scene: Scene
    model: Model
    method: Method
    iteration: int
    object_ids: "np.ndarray | None" = None  # (C,) object of every channel, found at render time on first use


def load_trained_run(run_dir: Path, device: torch.device, scene: Scene | None = None, components=frozenset()) -> TrainedRun:
    """Read RUN/config.json, the scene it names (cameras and classes; ``components`` adds pixel
    data, see :func:`load_scene`) and the latest checkpoint's weights."""
    run_dir = Path(run_dir)
    identity = load_run_identity(run_dir)
    config = load_run_config(run_dir)
    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunError(f"{run_dir / 'checkpoints'}: no checkpoint yet (train the run first)")
    if scene is None:
        scene = load_run_scene(config, identity["scene"], components)
    state = load_checkpoint(path, device)
    model, method = build_model_and_method(config, scene, device)
    load_states(model, method, state, path)
    model.eval()
    method.eval()
    return TrainedRun(run_dir, config, scene, model, method, int(state["iteration"]))


def load_run_scene(config: Config, root: str | Path, components=frozenset()) -> Scene:
    """The scene a run trains on, normalised the way the run's config says."""
    data = config.data
    return load_scene(root, downscale=data.downscale, components=components, box_margin=data.box_margin, box_tail_percent=data.box_tail_percent)
