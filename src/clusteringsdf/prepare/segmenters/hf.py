"""Shared loading of ``transformers`` checkpoints: a local folder, or a model id on the Hugging Face Hub.

A value that is an existing folder is used as it is (never a download). Otherwise a value shaped like
a model id (``owner/name``, e.g. ``facebook/sam-vit-base``) is looked up in the local Hugging Face
cache (``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``); when it is not there and the
network is allowed (neither ``HF_HUB_OFFLINE`` nor ``TRANSFORMERS_OFFLINE`` is set) its config,
processor and weights files are downloaded into that cache. Either way the model is then loaded from
the resulting folder with ``local_files_only=True``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

from ...errors import ClusteringSDFError, DataError

__all__ = ["checkpoint", "load_pretrained", "network_allowed", "require_transformers", "resolve_weights"]

MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# what a download fetches: configs, processor files and safetensors weights (pickled weights only when a repository has no safetensors)
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]
PICKLED_WEIGHTS = ["pytorch_model*.bin"]


def require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None:
        raise ClusteringSDFError('the mask2former and sam segmenters and --mono-depth need transformers: pip install -e ".[segmenters]"')


def network_allowed() -> bool:
    """False when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return not any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in WEIGHT_FILES)


def _cached_folder(model_id: str) -> Path | None:
    """The cached snapshot folder of ``model_id`` (its main revision) when it holds a config and weights."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json")
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if _complete(folder) else None


def _download(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(model_id, allow_patterns=DOWNLOAD_PATTERNS))
    if not _complete(folder):
        folder = Path(snapshot_download(model_id, allow_patterns=DOWNLOAD_PATTERNS + PICKLED_WEIGHTS))
    return folder


def resolve_weights(value: str | Path, option: str) -> Path:
    """The local folder of checkpoint ``value`` (a folder, or a model id; see the module docstring).

    Raises:
        DataError: one line: the model id is not in the local cache and could not be downloaded,
            and what to do about it.
    """
    text = value.as_posix() if isinstance(value, Path) else str(value)
    path = Path(text).expanduser()
    if path.exists() or not MODEL_ID.fullmatch(text):
        return path  # a folder (checked by checkpoint)
    from huggingface_hub import constants

    folder = _cached_folder(text)
    if folder is not None:
        return folder
    cache = constants.HF_HUB_CACHE
    if not network_allowed():
        why = "HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set"
    else:
        try:
            return _download(text)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # connection refused, DNS, proxy, timeouts, no such repository, gated
            kind = type(exc).__name__
            why = {"RepositoryNotFoundError": "no such model on the Hub, or a private one (log in with 'hf auth login')",
                   "GatedRepoError": "a gated model: accept its terms on huggingface.co and log in with 'hf auth login'"}.get(
                       kind, f"{kind}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else 'no connection'}")
    repo_folder = "models--" + text.replace("/", "--")
    raise DataError(text, f"no such folder, and as a Hugging Face model id it is not in the local cache ({cache}) and could not be "
                    f"downloaded ({why}); on a machine with internet run 'hf download {text}' (or 'huggingface-cli download {text}') "
                    f"and pass the folder it prints to {option}, or copy {repo_folder} from that machine's cache into {cache}")


def checkpoint(weights: str | Path | None, what: str, model_types: tuple[str, ...] | None, example: str, *,
               option: str = "--segmenter-weights") -> tuple[Path, dict]:
    """The local folder of checkpoint ``weights`` (a folder or a model id, :func:`resolve_weights`)
    and its ``config.json``, checked to be of one of ``model_types`` (None: any).

    Args:
        what: the option that needs the checkpoint, for the messages (``--segmenter sam``).
        option: the option that names the checkpoint.

    Raises:
        ClusteringSDFError / DataError: one line saying what to put where.
    """
    layout = "config.json, model.safetensors and preprocessor_config.json, as written by save_pretrained"
    if weights is None:
        raise ClusteringSDFError(f"{what} needs {option} DIR or ID: a local folder with {layout}, or a Hugging Face model id (e.g. {example})")
    require_transformers()
    weights = resolve_weights(weights, option)
    config_path = weights / "config.json"
    if not weights.is_dir() or not config_path.is_file():
        raise DataError(weights, f"not a checkpoint folder: {what} needs {layout} (or a model id such as {example})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(config_path, f"not valid JSON ({exc})") from None
    kind = config.get("model_type")
    if model_types is not None and kind not in model_types:
        raise DataError(weights, f"holds a '{kind}' checkpoint but {what} needs model_type {' or '.join(model_types)}")
    if not any((weights / name).is_file() for name in WEIGHT_FILES):
        raise DataError(weights, "no model weights (model.safetensors or pytorch_model.bin)")
    if not any((weights / name).is_file() for name in PROCESSOR_FILES):
        raise DataError(weights, "no preprocessor_config.json (save the image processor with save_pretrained into the same folder)")
    return weights, config


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
