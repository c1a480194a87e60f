"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from ..errors import RunError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a one-line RunError
    that says why (a CPU build of torch, or no GPU visible) and what to do."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in DEVICES:
        raise RunError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device cuda: {cuda_unavailable_reason()}; --device cpu (or auto) runs on the CPU")
    return torch.device(name)


def cuda_unavailable_reason() -> str:
    """Why PyTorch sees no CUDA device, and how to get one, in one line."""
    version = torch.__version__.split("+")[0]
    if torch.version.cuda is None:
        return (f"this torch {torch.__version__} is a CPU build; for a CUDA build: pip install torch=={version} "
                "--index-url https://download.pytorch.org/whl/cu126 (or see pytorch.org)")
    return (f"no GPU is visible to this torch {torch.__version__} (a CUDA {torch.version.cuda} build): check nvidia-smi, "
            "the NVIDIA driver and CUDA_VISIBLE_DEVICES")


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch's CUDA out-of-memory error (``torch.OutOfMemoryError``, or the
    RuntimeError older versions raise)."""
    kind = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, kind) or (isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc))


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
