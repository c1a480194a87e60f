"""Shared loading of local ``transformers`` checkpoints (offline only: never a hub download)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from ...errors import ClusteringSDFError, DataError

__all__ = ["checkpoint_config", "load_pretrained", "require_transformers"]


def require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None:
        raise ClusteringSDFError('the mask2former and sam segmenters need transformers: pip install -e ".[segmenters]"')
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def checkpoint_config(weights: Path | None, segmenter: str, model_types: tuple[str, ...], example: str) -> dict:
    """``config.json`` of a local checkpoint folder, checked to be of one of ``model_types``.

    Raises:
        ClusteringSDFError / DataError: one line saying what to put where.
    """
    layout = "config.json, model.safetensors and preprocessor_config.json, as written by save_pretrained"
    if weights is None:
        raise ClusteringSDFError(f"--segmenter {segmenter} needs --segmenter-weights DIR: a local folder with {layout} (e.g. {example}, downloaded where there is internet)")
    weights = Path(weights)
    config_path = weights / "config.json"
    if not weights.is_dir() or not config_path.is_file():
        raise DataError(weights, f"not a checkpoint folder: --segmenter {segmenter} needs {layout} (e.g. {example})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(config_path, f"not valid JSON ({exc})") from None
    kind = config.get("model_type")
    if kind not in model_types:
        raise DataError(weights, f"holds a '{kind}' checkpoint but --segmenter {segmenter} needs model_type {' or '.join(model_types)}")
    if not any((weights / name).is_file() for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")):
        raise DataError(weights, "no model weights (model.safetensors or pytorch_model.bin)")
    if not any((weights / name).is_file() for name in ("preprocessor_config.json", "processor_config.json")):
        raise DataError(weights, "no preprocessor_config.json (save the image processor with save_pretrained into the same folder)")
    return config


def load_pretrained(weights: Path, processor_class: Any, model_class: Any, *, device: str, name: str) -> tuple[Any, Any]:
    """The image processor and the model (in eval mode on ``device``) of a local checkpoint folder.

    Raises:
        DataError: one line naming the ``name`` checkpoint that does not load.
    """
    try:
        processor = processor_class.from_pretrained(str(weights), local_files_only=True)
        model = model_class.from_pretrained(str(weights), local_files_only=True).to(device).eval()
    except (OSError, ValueError) as exc:
        raise DataError(Path(weights), f"cannot load the {name} checkpoint ({str(exc).splitlines()[0]})") from None
    return processor, model
