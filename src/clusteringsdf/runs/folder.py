"""The run folder: config, checkpoints, logs. Never overwrites a different run without ``force``.

Layout::

    RUN/
      config.json          resolved Config plus the scene path ("run" section)
      checkpoints/ckpt_<iteration>.pt, latest.txt
      metrics.jsonl        one JSON line of loss terms per log step, and one per training warning
      tb/                  TensorBoard scalars
      eval/ ...            renders and scores written by --eval / `render`
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ConfigError
from ..errors import RunError
from ..files import atomic_write, write_json_atomic, write_text_atomic
from ..methods import method_class

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.txt"
METRICS_FILE = "metrics.jsonl"


def run_identity(config: Config, scene: Path) -> dict[str, Any]:
    """What config.json records: the full config and the scene folder."""
    return {"config": config.to_dict(), "scene": str(Path(scene).resolve())}


def same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two identities describe the same run if they differ at most in the run length (a run may be
    extended with ``--resume --iters N``) and the render-time ``inference`` settings. A key that
    an older config.json lacks takes its default, which is always the behaviour from before the
    key existed."""
    return not run_differences(a, b)


def run_differences(existing: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """What makes ``given`` another run than ``existing`` (see :func:`same_run`), one phrase per
    difference: ``train.seed 0 -> 7``, ``scene /a -> /b``, or why ``existing`` cannot be compared."""

    def flat(identity: dict[str, Any]) -> dict[str, Any]:
        config = Config.from_dict(identity.get("config", {})).to_dict()
        config["train"].pop("iterations")
        config.pop("inference")
        values = {f"{section}.{key}": value for section, keys in config.items() if isinstance(keys, dict) for key, value in keys.items()}
        values.update({key: value for key, value in config.items() if not isinstance(value, dict)})
        values.update({key: value for key, value in identity.items() if key != "config"})
        return values

    try:
        old = flat(existing)
    except (TypeError, ValueError, ConfigError) as exc:  # a config.json this version cannot read
        return [f"its config.json cannot be read by this version ({exc})"]
    new = flat(given)
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def prepare_run_folder(run: Path, identity: dict[str, Any], resume: bool, force: bool) -> bool:
    """Create or validate the run folder. Returns True when an existing run is resumed.

    * new or empty folder: initialised.
    * ``resume`` and the folder holds this run: resumed (or started, if it has no checkpoint yet).
    * the folder holds a run and neither ``resume`` nor ``force`` is given, or ``resume`` is given
      but the folder holds a different run: RunError, nothing touched.
    * ``force``: the old content is moved aside to ``RUN.replaced-<time>`` (nothing is deleted).
    """
    config_path = run / CONFIG_FILE
    occupied = run.exists() and any(run.iterdir())
    if occupied and not config_path.is_file() and not force:
        raise RunError(f"{run}: folder is not empty and holds no run; choose another --out or pass --force")
    if occupied and config_path.is_file():
        try:
            existing = json.loads(config_path.read_text())
        except ValueError:
            existing = None
        differences = run_differences(existing, identity) if existing is not None else ["its config.json is not valid JSON"]
        if force:
            backup = run.with_name(f"{run.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(run), str(backup))
            print(f"note: moved the previous run to {backup}")
        elif resume and not differences:
            write_json_atomic(config_path, identity)  # records a changed run length
            return latest_checkpoint(run) is not None
        elif resume:
            shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
            raise RunError(f"{run}: holds a different run ({shown}); resume it with the same scene and config, or pass --force to start over "
                           "(the old run is kept aside)")
        else:
            raise RunError(f"{run}: already holds a run; pass --resume to continue it or --force to start over (the old run is kept aside)")
    elif occupied and force:
        backup = run.with_name(f"{run.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(run), str(backup))
        print(f"note: moved the previous content to {backup}")
    (run / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    write_json_atomic(config_path, identity)
    return False


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run folder's file; unreadable JSON is a one-line RunError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object")
    return data


def load_run_identity(run: Path) -> dict[str, Any]:
    path = run / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: not found (is {run} a run folder?)")
    return load_json(path)


def load_run_config(run: Path) -> Config:
    """The run's stored configuration; a config this version cannot read is a one-line RunError."""
    identity = load_run_identity(run)
    try:
        config = Config.from_dict(identity["config"])
        method_class(config.mode)
        return config
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunError(f"{run / CONFIG_FILE}: cannot read the run's configuration ({exc})") from None


def save_checkpoint(run: Path, iteration: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``ckpt_<iteration>.pt`` atomically, point latest.txt at it, keep the newest ``keep``."""
    folder = run / CHECKPOINT_DIR
    path = folder / f"ckpt_{iteration:07d}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    write_text_atomic(folder / LATEST_FILE, path.name + "\n")
    for old in sorted(folder.glob("ckpt_*.pt"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(run: Path) -> Path | None:
    folder = run / CHECKPOINT_DIR
    latest = folder / LATEST_FILE
    if latest.is_file():
        path = folder / latest.read_text().strip()
        if path.is_file():
            return path
    candidates = sorted(folder.glob("ckpt_*.pt"))
    return candidates[-1] if candidates else None


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise RunError(f"{path}: unreadable checkpoint ({exc})") from None
