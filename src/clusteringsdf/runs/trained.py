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
from .scene_record import locate_scene, read_scene_record, recorded_frame, scene_from_record

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
    """A run ready for inference: its folder, config, scene (cameras and classes; pixel data only
    where asked for), model and method (eval mode). ``scene.root`` is where the scene folder was
    found (or was recorded, when it is not found: ``scene_found`` is then False)."""

    run_dir: Path
    config: Config
    scene: Scene
    model: Model
    method: Method
    iteration: int
    object_map: Any = None  # inference.channels.ObjectMap: the object of every channel and patch, found at render time on first use
    record: "dict | None" = None  # RUN/scene.json (None for runs written before it existed)
    scene_found: bool = True

    def require_scene(self) -> None:
        """A one-line RunError when the run's scene folder is not found (what needs its images)."""
        if not self.scene_found:
            raise RunError(f"{self.run_dir}: its scene is not at {self.scene.root} (moved?); pass --scene with the scene folder")

    def load_frames(self, components: frozenset[str] | set[str]) -> Scene:
        """The run's scene with pixel ``components`` (:func:`load_scene`), in the frame the run was
        trained in; a one-line RunError when the scene folder is not found."""
        self.require_scene()
        frame = None if self.record is None else recorded_frame(self.record)
        return _matching(load_run_scene(self.config, self.scene.root, components, frame=frame), self.record)


def load_trained_run(
    run_dir: Path, device: torch.device, scene: Scene | None = None, components=frozenset(), *, scene_path: Path | None = None
) -> TrainedRun:
    """Read RUN/config.json, the run's scene (its cameras and classes from RUN/scene.json, which
    needs no scene folder; ``components`` adds pixel data, see :func:`load_scene`, from the scene
    folder: ``scene_path`` or where the run recorded it, see :func:`.scene_record.locate_scene`)
    and the latest checkpoint's weights."""
    run_dir = Path(run_dir)
    identity = load_run_identity(run_dir)
    config = load_run_config(run_dir)
    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunError(f"{run_dir / 'checkpoints'}: no checkpoint yet (train the run first)")
    record = read_scene_record(run_dir)
    root = locate_scene(run_dir, record, identity.get("scene"), scene_path)
    if scene is None:
        scene = _run_scene(config, record, root, identity=identity, components=components)
    state = load_checkpoint(path, device)
    model, method = build_model_and_method(config, scene, device)
    load_states(model, method, state, path)
    model.eval()
    method.eval()
    return TrainedRun(run_dir, config, scene, model, method, int(state["iteration"]), record=record, scene_found=root is not None)


def _run_scene(config: Config, record: dict | None, root: Path | None, *, identity: dict, components) -> Scene:
    """The scene of a run: from its record when no pixels are needed, else from the scene folder."""
    if record is not None and not components:
        return scene_from_record(record, root if root is not None else Path(record["absolute_path"]))
    if root is None:
        where = record["absolute_path"] if record is not None else identity.get("scene")
        raise RunError(f"{where}: the run's scene folder is not there (moved?); pass --scene with the scene folder")
    return _matching(load_run_scene(config, root, components, frame=None if record is None else recorded_frame(record)), record)


def _matching(scene: Scene, record: dict | None) -> Scene:
    """``scene``, after checking it holds the frames the run was trained on."""
    if record is not None and list(scene.frame_names) != list(record["frames"]):
        raise RunError(f"{scene.root}: holds other frames than the run's scene ({len(scene.frame_names)} vs {len(record['frames'])}); is --scene the right folder?")
    return scene


def load_run_scene(config: Config, root: str | Path, components=frozenset(), *, frame=None) -> Scene:
    """The scene a run trains on, normalised the way the run's config says (or in ``frame``, the
    normalisation and box a trained run recorded)."""
    data = config.data
    return load_scene(
        root, downscale=data.downscale, components=components, box_margin=data.box_margin, box_tail_percent=data.box_tail_percent, frame=frame
    )
