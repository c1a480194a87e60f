"""Run folders (config, checkpoints, logs), devices, and loading trained runs: what training and
inference share."""

from .device import resolve_device
from .folder import CONFIG_FILE, METRICS_FILE, latest_checkpoint, load_checkpoint, load_run_config, load_run_identity
from .scene_record import SCENE_FILE, read_scene_record, write_scene_record
from .trained import TrainedRun, build_model_and_method, load_run_scene, load_trained_run

__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "SCENE_FILE", "TrainedRun", "read_scene_record", "write_scene_record", "build_model_and_method", "latest_checkpoint", "load_checkpoint",
    "load_run_config", "load_run_identity", "load_run_scene", "load_trained_run", "resolve_device",
]
