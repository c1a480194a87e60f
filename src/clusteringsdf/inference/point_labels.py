"""Labels at 3D points of a trained run: the channel that owns a point and, where no object's class
applies, the semantic head's stuff class. Shared by the Python API, the exports and the viewer."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..model import map_chunks
from ..runs import TrainedRun

CHUNK = 65_536  # points per field evaluation


@torch.no_grad()
def owner_channels(trained: TrainedRun, points: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(N,) int64 the arg-min SDF channel at normalised points (N, 3)."""
    field = trained.model.field
    return map_chunks(lambda p: field.geometry(p).sdf.argmin(-1), points, chunk=chunk, device=trained.model.bbox.device).cpu().numpy()


@torch.no_grad()
def stuff_classes_at(trained: TrainedRun, points: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(N,) int64 at normalised points (N, 3): the semantic head's best class among the stuff
    classes the training labels hold; -1 for runs without a semantic head or without such a class."""
    method, field = trained.method, trained.model.field
    allowed = method.votes.observed_classes() & torch.as_tensor(trained.scene.classes.stuff_mask(field.num_classes), device=trained.model.bbox.device)
    if not method.uses_semantic_head or not bool(allowed.any()):
        return np.full(len(points), -1, dtype=np.int64)

    def best_stuff(p: torch.Tensor) -> torch.Tensor:
        return field.semantic_logits(field.geometry(p).feature).masked_fill(~allowed, -math.inf).argmax(-1)

    return map_chunks(best_stuff, points, chunk=chunk, device=trained.model.bbox.device).cpu().numpy()
