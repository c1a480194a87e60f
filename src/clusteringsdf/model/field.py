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

import torch
from torch import nn

from ..config import FieldConfig
from .hashgrid import HashGrid
from .jets import WeightNormLinear, positional_encoding_jet, relu_jet, softplus_jet


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
    """

    def __init__(self, config: FieldConfig, bbox: torch.Tensor, num_classes: int) -> None:
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
        dims = [in_dim] + [config.hidden_dim] * config.hidden_layers + [config.channels + config.feature_dim]
        self.geometry_layers = nn.ModuleList(
            WeightNormLinear(dims[i], dims[i + 1], config.weight_norm) for i in range(len(dims) - 1)
        )
        color_in = 3 + 3 + 6 * config.view_frequencies + (3 if config.color_uses_normal else 0) + config.feature_dim
        cdims = [color_in] + [config.color_hidden_dim] * config.color_hidden_layers + [3]
        self.color_layers = nn.ModuleList(WeightNormLinear(cdims[i], cdims[i + 1], config.weight_norm) for i in range(len(cdims) - 1))
        self.semantic_head = nn.Sequential(
            nn.Linear(config.feature_dim, config.semantic_hidden_dim), nn.ReLU(), nn.Linear(config.semantic_hidden_dim, num_classes)
        )
        self.embedding_head = nn.Sequential(
            nn.Linear(config.feature_dim, config.semantic_hidden_dim), nn.ReLU(), nn.Linear(config.semantic_hidden_dim, config.embedding_dim)
        )
        self._geometric_init(config.init_radius)

    @torch.no_grad()
    def _geometric_init(self, radius: float) -> None:
        """IDR init: background ~ radius - |x| (inside-out), every object channel ~ |x| - radius / 2."""
        layers = self.geometry_layers
        for i, layer in enumerate(layers):
            out_dim, in_dim = layer.direction.shape
            if i == len(layers) - 1:
                weight = torch.randn(out_dim, in_dim) * 1e-4
                mean = math.sqrt(math.pi) / math.sqrt(in_dim)
                weight[0] -= mean
                weight[1 : self.channels] += mean
                weight[self.channels :] = torch.randn(out_dim - self.channels, in_dim) * (1.0 / math.sqrt(in_dim))
                bias = torch.zeros(out_dim)
                bias[0] = radius
                bias[1 : self.channels] = -0.5 * radius
            else:
                weight = torch.randn(out_dim, in_dim) * (math.sqrt(2.0) / math.sqrt(out_dim))
                if i == 0:
                    weight[:, 3:] = 0.0  # only raw xyz at first: higher PE bands and grid features start at zero
                bias = torch.zeros(out_dim)
            layer.set_weight(weight, bias)

    def geometry(self, points: torch.Tensor, with_jacobian: bool = False) -> GeometryOutput:
        """SDF channels and features at points (N, 3); with the Jacobian (N, 3, C) if requested."""
        encoded = positional_encoding_jet(points, self.config.pe_frequencies, with_jacobian)  # (N, K, P)
        grid_features, grid_jacobian = self.grid(points, with_jacobian)
        if with_jacobian:
            grid_jet = torch.cat([grid_features.unsqueeze(1), grid_jacobian], dim=1)
        else:
            grid_jet = grid_features.unsqueeze(1)
        jet = torch.cat([encoded, grid_jet], dim=-1)
        for layer in self.geometry_layers[:-1]:
            jet = softplus_jet(layer(jet), self.config.softplus_beta)
        out = self.geometry_layers[-1](jet)  # (N, K, C + F)
        sdf = out[:, 0, : self.channels]
        feature = out[:, 0, self.channels :]
        jacobian = out[:, 1:, : self.channels] if with_jacobian else None
        return GeometryOutput(sdf=sdf, feature=feature, jacobian=jacobian)

    def color(self, points: torch.Tensor, directions: torch.Tensor, normals: torch.Tensor | None, feature: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (N, 3) from points (N, 3), unit view directions (N, 3), SDF gradients (N, 3), features (N, F)."""
        view = positional_encoding_jet(directions, self.config.view_frequencies, False)[:, 0]
        parts = [points, view]
        if self.config.color_uses_normal:
            if normals is None:
                raise ValueError("this field's colour network needs the SDF gradient")
            parts.append(normals)
        parts.append(feature)
        jet = torch.cat(parts, dim=-1).unsqueeze(1)
        for layer in self.color_layers[:-1]:
            jet = relu_jet(layer(jet))
        return torch.sigmoid(self.color_layers[-1](jet)[:, 0])

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
