"""Forward-mode "jets" for small MLPs: propagate a value together with its spatial Jacobian.

A jet is a tensor of shape (N, K, D): slot 0 holds the value, slots 1..3 (when K = 4) hold its
derivatives with respect to x, y and z. Linear layers act on all slots with one matmul (the bias only
on slot 0); activations multiply the tangent slots by their derivative. The result is an ordinary
differentiable tensor, so an eikonal loss on the Jacobian needs only a first-order backward, which
is several times cheaper on the CPU than autograd's double backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation, ``W = g * V / ||V||_row``, applied to jets.

    Args:
        in_dim: input width D_in.
        out_dim: output width D_out.
        weight_norm: use the normalised parametrisation (as in IDR/VolSDF/ObjectSDF++).
    """

    def __init__(self, in_dim: int, out_dim: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.weight_norm = weight_norm
        self.direction = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.kaiming_uniform_(self.direction, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.bias, -bound, bound)
        self.gain = nn.Parameter(self.direction.detach().norm(dim=1)) if weight_norm else None

    @property
    def weight(self) -> torch.Tensor:
        if self.gain is None:
            return self.direction
        return self.direction * (self.gain / self.direction.norm(dim=1).clamp_min(1e-12)).unsqueeze(1)

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the effective weight and bias (used by geometric initialisation)."""
        self.direction.copy_(weight)
        self.bias.copy_(bias)
        if self.gain is not None:
            self.gain.copy_(weight.norm(dim=1))

    def forward(self, jet: torch.Tensor) -> torch.Tensor:
        """(N, K, D_in) -> (N, K, D_out); the bias is added to the value slot only."""
        out = torch.matmul(jet, self.weight.t())
        if jet.shape[1] == 1:
            return out + self.bias
        return torch.cat([out[:, :1] + self.bias, out[:, 1:]], dim=1)


def softplus_jet(jet: torch.Tensor, beta: float) -> torch.Tensor:
    """Softplus with sharpness ``beta`` on a jet (N, K, D)."""
    value = F.softplus(jet[:, :1], beta=beta)
    if jet.shape[1] == 1:
        return value
    slope = torch.sigmoid(beta * jet[:, :1])
    return torch.cat([value, jet[:, 1:] * slope], dim=1)


def relu_jet(jet: torch.Tensor) -> torch.Tensor:
    """ReLU on a jet (N, K, D)."""
    if jet.shape[1] == 1:
        return F.relu(jet)
    mask = (jet[:, :1] > 0).to(jet.dtype)
    return jet * mask


def positional_encoding_jet(points: torch.Tensor, frequencies: int, with_jacobian: bool) -> torch.Tensor:
    """NeRF positional encoding [x, sin(2^k x), cos(2^k x)] of points (N, 3) as a jet (N, K, 3 + 6*frequencies)."""
    n = points.shape[0]
    scales = 2.0 ** torch.arange(frequencies, dtype=points.dtype, device=points.device)  # (M,)
    angles = points.unsqueeze(1) * scales.view(1, -1, 1)  # (N, M, 3)
    sin, cos = torch.sin(angles), torch.cos(angles)
    value = torch.cat([points, torch.stack([sin, cos], dim=2).reshape(n, -1)], dim=-1).unsqueeze(1)
    if not with_jacobian:
        return value
    eye = torch.eye(3, dtype=points.dtype, device=points.device)  # d x_a / d x_b
    # d sin(s x_a)/d x_b = s cos(s x_a) [a == b]; layout per frequency: [sin(3), cos(3)].
    dsin = (scales.view(1, -1, 1) * cos).unsqueeze(1) * eye.view(1, 3, 1, 3)  # (N, 3, M, 3)
    dcos = (-scales.view(1, -1, 1) * sin).unsqueeze(1) * eye.view(1, 3, 1, 3)
    tangents = torch.cat([eye.expand(n, 3, 3), torch.stack([dsin, dcos], dim=3).reshape(n, 3, -1)], dim=-1)
    return torch.cat([value, tangents], dim=1)
