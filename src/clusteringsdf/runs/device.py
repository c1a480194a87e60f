"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from ..errors import RunError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a one-line RunError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in DEVICES:
        raise RunError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available to PyTorch")
    return torch.device(name)


def describe_device(device: torch.device, threads: int | None = None) -> str:
    """One line naming the device a command computes on: ``cuda:0 (NVIDIA H100 80GB HBM3, 79 GiB)``
    or ``cpu (2 threads)`` (``threads``: the threads the command will use; default torch's current
    count)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({properties.name}, {properties.total_memory / 2**30:.0f} GiB)"
    count = threads or torch.get_num_threads()
    return f"{device.type} ({count} thread{'' if count == 1 else 's'})"
