"""The object-compositional SDF field: C signed-distance channels, a feature vector, colour,
semantic and (for the contrastive baseline) embedding heads.

Channel 0 is the background, an inside-out SDF (positive inside the room); channels 1..C-1 are
objects. The scene SDF is the minimum over channels. All object channels start identical up to
1e-4 weight noise (IDR geometric initialisation, compositional variant), which the self-organising
clustering losses rely on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
import torch
from torch import nn

from ..config import FieldConfig
from .hashgrid import HashGrid
from .jets import Jet, WeightNormLinear, positional_encoding, softplus_jet


Output = TypeVar("Output", torch.Tensor, tuple[torch.Tensor, ...])

# Points per network evaluation on the CPU: the intermediates of 16k points stay in the caches. The
# geometry network takes 1.6 us per point at 16k points, 1.8 at 65k and 3.4 at 262k (2 threads).
CPU_CHUNK = 16_384


def map_chunks(
    function: Callable[..., Output], *rows: np.ndarray | torch.Tensor, chunk: int, device: torch.device | None = None
) -> Output:
    """``function`` of ``rows`` (arrays of N rows each, passed as its arguments), ``chunk`` rows at a
    time (at most :data:`CPU_CHUNK` on the CPU), its outputs (one tensor or a tuple of them, N rows
    each) concatenated. Numpy rows become float32 tensors on ``device`` one chunk at a time, so only
    a chunk of them is ever on the device."""
    on = rows[0].device if isinstance(rows[0], torch.Tensor) else device
    if on is None or on.type == "cpu":
        chunk = min(chunk, CPU_CHUNK)
    parts = []
    for start in range(0, max(len(rows[0]), 1), chunk):
        parts.append(function(*(_rows_tensor(r[start : start + chunk], device) for r in rows)))
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts))
    return torch.cat(parts)


def _rows_tensor(rows: np.ndarray | torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return rows if isinstance(rows, torch.Tensor) else torch.as_tensor(rows, dtype=torch.float32, device=device)


@dataclass
class GeometryOutput:
    """Geometry at N points.

    sdf: (N, C) per-channel signed distances.
    feature: (N, F) feature vector for the colour / semantic heads.
    jacobian: (N, 3, C) d sdf / d x per channel, when requested, else None.
    """

    sdf: torch.Tensor
    feature: torch.Tensor
    jacobian: torch.Tensor | None = None

    @property
    def scene_sdf(self) -> torch.Tensor:
        """(N,) minimum over channels."""
        return self.sdf.min(dim=-1).values

    def scene_gradient(self) -> torch.Tensor:
        """(N, 3) gradient of the scene SDF (the gradient of the arg-min channel)."""
        if self.jacobian is None:
            raise ValueError("geometry was evaluated without its Jacobian")
        index = self.sdf.argmin(dim=-1)
        return self.jacobian.gather(2, index.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(-1)


class SDFField(nn.Module):
    """Hash grid + positional encoding -> softplus MLP -> C SDFs + feature; colour and semantic heads.

    Args:
        config: network sizes.
        bbox: (2, 3) normalised scene box covered by the hash grid.
        num_classes: semantic classes of the scene (the semantic head's output size).
        object_radius: radius of the sphere at the origin that every object channel starts as. It
            must not contain a camera (a camera inside solid matter sees only fog), so indoor scenes
            pass something smaller than the closest camera's distance to the origin.
    """

    def __init__(self, config: FieldConfig, bbox: torch.Tensor, num_classes: int, object_radius: float | None = None) -> None:
        super().__init__()
        self.config = config
        self.channels = config.channels
        self.num_classes = num_classes
        self.grid = HashGrid(
            bbox,
            levels=config.grid_levels,
            features_per_level=config.grid_features,
            log2_table_size=config.grid_log2_size,
            base_resolution=config.grid_base_resolution,
            finest_resolution=config.grid_finest_resolution,
        )
        in_dim = 3 + 6 * config.pe_frequencies + self.grid.output_dim
        dims = [in_dim] + [config.hidden_dim] * config.hidden_layers
        self.geometry_layers = nn.ModuleList(
            WeightNormLinear(dims[i], dims[i + 1], config.weight_norm) for i in range(len(dims) - 1)
        )
        # The output layer is split in two heads (same maths as one layer with C + F outputs) so the
        # Jacobian is only propagated to the SDF channels.
        self.sdf_head = WeightNormLinear(config.hidden_dim, config.channels, config.weight_norm)
        self.feature_head = WeightNormLinear(config.hidden_dim, config.feature_dim, config.weight_norm)
        color_in = 3 + 3 + 6 * config.view_frequencies + (3 if config.color_uses_normal else 0) + config.feature_dim
        cdims = [color_in] + [config.color_hidden_dim] * config.color_hidden_layers + [3]
        self.color_layers = nn.ModuleList(WeightNormLinear(cdims[i], cdims[i + 1], config.weight_norm) for i in range(len(cdims) - 1))
        self.semantic_head = nn.Sequential(
            nn.Linear(config.feature_dim, config.semantic_hidden_dim), nn.ReLU(), nn.Linear(config.semantic_hidden_dim, num_classes)
        )
        self.embedding_head = nn.Sequential(
            nn.Linear(config.feature_dim, config.semantic_hidden_dim), nn.ReLU(), nn.Linear(config.semantic_hidden_dim, config.embedding_dim)
        )
        self._geometric_init(config.init_radius, 0.5 * config.init_radius if object_radius is None else object_radius)
        if config.object_init == "background":
            self._objects_from_background(config.object_init_offset)

    @torch.no_grad()
    def _geometric_init(self, radius: float, object_radius: float) -> None:
        """IDR init: background ~ radius - |x| (inside-out), every object channel ~ |x| - object_radius.

        Object channels differ only by 1e-4 weight noise (the clustering relies on that symmetry).
        """
        for i, layer in enumerate(self.geometry_layers):
            out_dim, in_dim = layer.direction.shape
            weight = torch.randn(out_dim, in_dim) * (math.sqrt(2.0) / math.sqrt(out_dim))
            if i == 0:
                weight[:, 3:] = 0.0  # only raw xyz at first: higher PE bands and grid features start at zero
            layer.set_weight(weight, torch.zeros(out_dim))
        hidden = self.config.hidden_dim
        mean = math.sqrt(math.pi) / math.sqrt(hidden)
        weight = torch.randn(self.channels, hidden) * 1e-4
        weight[0] -= mean
        weight[1:] += mean
        bias = torch.full((self.channels,), -0.5 * radius)
        bias[0] = radius
        self.sdf_head.set_weight(weight, bias)
        # The softplus MLP is only roughly |x| (flat near the origin): shift the object biases so the
        # zero level of every object channel sits at object_radius, measured on the 26 directions
        # to the neighbours of a cube cell.
        steps = torch.tensor([-1.0, 0.0, 1.0])
        directions = torch.cartesian_prod(steps, steps, steps)
        directions = directions[directions.norm(dim=-1) > 0]
        directions = directions / directions.norm(dim=-1, keepdim=True)
        on_sphere = self.geometry(directions * object_radius).sdf.mean(dim=0)
        bias[1:] -= on_sphere[1:]
        self.sdf_head.set_weight(weight, bias)
        self.feature_head.set_weight(torch.randn(self.config.feature_dim, hidden) / math.sqrt(hidden), torch.zeros(self.config.feature_dim))

    @torch.no_grad()
    def _objects_from_background(self, offset: float) -> None:
        """Start every object channel as a copy of the background channel plus ``offset`` (and
        1e-4 noise): s_k = s_0 + offset. Every surface the background explains is then within
        ``offset`` of every object channel, so the segmentation losses can hand it to any of them
        from the first step (a far-away initial object sphere gets no gradient once beta is small).
        """
        weight = self.sdf_head.weight.clone()
        bias = self.sdf_head.bias.clone()
        weight[1:] = weight[0] + torch.randn_like(weight[1:]) * 1e-4
        bias[1:] = bias[0] + offset
        self.sdf_head.set_weight(weight, bias)

    def geometry(self, points: torch.Tensor, with_jacobian: bool = False) -> GeometryOutput:
        """SDF channels and features at points (N, 3); with the Jacobian (N, 3, C) if requested."""
        encoded = positional_encoding(points, self.config.pe_frequencies, with_jacobian)
        grid_features, grid_jacobian = self.grid(points, with_jacobian)
        jet = self.geometry_layers[0].jet([encoded, Jet(grid_features, grid_jacobian)])
        jet = softplus_jet(jet, self.config.softplus_beta)
        for layer in self.geometry_layers[1:]:
            jet = softplus_jet(layer.jet([jet]), self.config.softplus_beta)
        sdf = self.sdf_head.jet([jet])
        feature = self.feature_head(jet.value)
        return GeometryOutput(sdf=sdf.value, feature=feature, jacobian=sdf.tangent)

    def color(self, points: torch.Tensor, directions: torch.Tensor, normals: torch.Tensor | None, feature: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (N, 3) from points (N, 3), unit view directions (N, 3), SDF gradients (N, 3), features (N, F)."""
        view = positional_encoding(directions, self.config.view_frequencies).value
        parts = [points, view]
        if self.config.color_uses_normal:
            if normals is None:
                raise ValueError("this field's colour network needs the SDF gradient")
            parts.append(normals)
        parts.append(feature)
        hidden = torch.cat(parts, dim=-1)
        for layer in self.color_layers[:-1]:
            hidden = torch.relu(layer(hidden))
        return torch.sigmoid(self.color_layers[-1](hidden))

    def surface_color(self, points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """(N, 3) colour in [0, 1] of surface points (N, 3) seen from outside, along minus their
        outward normals (N, 3, any length); the SDF gradient is evaluated only for a colour network
        that takes it."""
        geometry = self.geometry(points, with_jacobian=self.config.color_uses_normal)
        gradient = geometry.scene_gradient() if self.config.color_uses_normal else None
        return self.color(points, -torch.nn.functional.normalize(normals, dim=-1), gradient, geometry.feature)

    def semantic_logits(self, feature: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) per-point class logits."""
        return self.semantic_head(feature)

    def embedding(self, feature: torch.Tensor) -> torch.Tensor:
        """(N, E) per-point instance embedding (contrastive baseline)."""
        return self.embedding_head(feature)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(hash-grid table, everything else) for per-group learning rates."""
        grid = [self.grid.table]
        rest = [p for name, p in self.named_parameters() if not name.startswith("grid.")]
        return grid, rest
