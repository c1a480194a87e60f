"""What a render call is asked for and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class RenderRequest:
    """Which outputs to compute beyond colour and depth.

    normals: camera-frame normal map (needs the SDF gradient at every sample).
    opacity: (R, C) object opacities.
    semantics: (R, K) rendered class probabilities of the semantic head.
    embedding: (R, E) rendered instance embedding of the field's embedding head.
    surface_points: one random sample per ray (for the eikonal and smoothness terms).
    feature_heads: (name, head, output width) of extra heads owned by a method (e.g. Contrastive
        Lift's slow EMA head), each evaluated on the detached per-sample features and composited with the detached weights into
        ``RenderOutput.extras[name]``.
    """

    normals: bool = False
    opacity: bool = True
    semantics: bool = True
    embedding: bool = False
    surface_points: bool = False
    feature_heads: tuple[tuple[str, nn.Module, int], ...] = ()


@dataclass
class RenderOutput:
    """Rendered outputs of R rays with S samples each (C channels, K classes, E embedding dims).

    rgb: (R, 3) colour in [0, 1] (slightly outside before clamping).
    depth: (R,) z-depth in normalised units.
    weights: (R, S) volume-rendering weights; z: (R, S) sample distances.
    normal: (R, 3) camera-frame normal, when requested.
    surface_crossing: (R,) bool, rays whose samples cross the zero level (with normals).
    opacity: (R, C) object opacities, when requested.
    semantics: (R, K) class probabilities (weights-normalised), when requested.
    embedding: (R, E) instance embedding, when requested.
    surface_points: (R, 3) one random sample point per ray (detached), when requested.
    extras: name -> (R, D) composited outputs of the request's ``feature_heads``.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor
    z: torch.Tensor
    normal: torch.Tensor | None = None
    surface_crossing: torch.Tensor | None = None
    opacity: torch.Tensor | None = None
    semantics: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    surface_points: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
