"""Run folders (config, checkpoints, logs), devices, and loading trained runs: what training and
inference share."""

from .device import resolve_device
from .folder import CONFIG_FILE, METRICS_FILE, latest_checkpoint, load_checkpoint, load_run_config, load_run_identity
from .trained import TrainedRun, build_model_and_method, load_run_scene, load_trained_run

__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "TrainedRun", "build_model_and_method", "latest_checkpoint", "load_checkpoint",
    "load_run_config", "load_run_identity", "load_run_scene", "load_trained_run", "resolve_device",
]
