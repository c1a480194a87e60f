"""Functional volume rendering for SDF fields (VolSDF) with ObjectSDF++'s object opacities.

All functions work on padded per-ray sample tensors: R rays x S samples, sorted by distance.
"""

from __future__ import annotations

import torch

FAR_DELTA = 1e10  # length of the last interval: the last sample absorbs what is left of the ray


def laplace_density(sdf: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """VolSDF density sigma = Psi_beta(-sdf) / beta, with Psi the Laplace CDF. Any shape."""
    alpha = 1.0 / beta
    return alpha * (0.5 + 0.5 * sdf.sign() * torch.expm1(-sdf.abs() / beta))


def interval_lengths(z: torch.Tensor, last: float = FAR_DELTA, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Interval after each sample (R, S): z[i+1] - z[i], ``last`` for the final one.

    ``valid`` (R, S-1) marks intervals inside the sampled region; intervals across gaps (sphere-guided
    marching) get length 0, so they are transparent.
    """
    deltas = z[:, 1:] - z[:, :-1]
    if valid is not None:
        deltas = deltas * valid.to(deltas.dtype)
    return torch.cat([deltas, torch.full_like(z[:, :1], last)], dim=-1)


def render_weights(sigma: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Volume-rendering weights and transmittance.

    Args:
        sigma, deltas: (R, S).

    Returns:
        weights w_i = T_i (1 - exp(-sigma_i delta_i)) (R, S) and transmittance T_i (R, S).
    """
    optical = sigma * deltas
    accumulated = torch.cumsum(optical, dim=-1)
    transmittance = torch.exp(-torch.cat([torch.zeros_like(accumulated[:, :1]), accumulated[:, :-1]], dim=-1))
    weights = transmittance * (1.0 - torch.exp(-optical))
    return weights, transmittance


def object_opacity(channel_sdf: torch.Tensor, beta: torch.Tensor | float, deltas: torch.Tensor, transmittance: torch.Tensor) -> torch.Tensor:
    """Occlusion-aware object opacity (ObjectSDF++): o_k = sum_i T_i (1 - exp(-sigma(s_k,i) delta_i)).

    Args:
        channel_sdf: (R, S, C) per-channel SDF at the samples.
        deltas, transmittance: (R, S) from the scene SDF.

    Returns:
        (R, C) opacities in [0, sum_i w_i] (because s_k >= min_k s_k).
    """
    sigma = laplace_density(channel_sdf, beta)
    alpha = 1.0 - torch.exp(-sigma * deltas.unsqueeze(-1))
    return torch.einsum("rs,rsc->rc", transmittance, alpha)


def composite(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Weighted sum over samples: weights (R, S), values (R, S, D) -> (R, D)."""
    return torch.einsum("rs,rsd->rd", weights, values)


def expected_distance(weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Normalised expected ray distance (R,) = sum w z / sum w."""
    return (weights * z).sum(-1) / (weights.sum(-1) + 1e-8)


def density_share_opacity(channel_sdf: torch.Tensor, beta: torch.Tensor | float, weights: torch.Tensor) -> torch.Tensor:
    """Object opacity as each channel's share of the density where the ray terminates:
    o_k = sum_i w_i sigma(s_k,i) / sum_j sigma(s_j,i).

    For positive SDFs the share is softmax_k(-s_k / beta), so every channel receives a gradient at
    every surface sample, however far its own surface is (with a large beta). With a small beta and
    separated objects it equals the occlusion-aware opacity. channel_sdf (R, S, C), weights (R, S).
    """
    share = torch.softmax(-channel_sdf / beta, dim=-1)  # Laplace densities share as exp(-s/beta) for s > 0
    return torch.einsum("rs,rsc->rc", weights, share)
