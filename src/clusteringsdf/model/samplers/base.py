"""The sampler interface and the sampling maths every sampler shares.

A sampler decides where along each ray the field is evaluated. It never builds an autograd graph:

    samples = sampler.sample(rays, beta, train, generator)

returns :class:`RaySamples`: sorted distances ``z`` (R, S) and, optionally, a (R, S-1) mask of the
intervals between consecutive samples that lie inside the sampled region (intervals across gaps
are transparent). ``uses_volume`` says whether it reads the model's cached SDF volume, which the
model then keeps up to date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from ...sampling.rays import RayBatch

SdfFunction = Callable[[torch.Tensor], torch.Tensor]  # (N, 3) -> (N,) scene SDF, no gradients


@dataclass
class RaySamples:
    """Where a batch of R rays is evaluated.

    z: (R, S) sorted distances along each ray (normalised units).
    valid: (R, S-1) bool, True for intervals inside the sampled region; None = every interval.
    """

    z: torch.Tensor
    valid: torch.Tensor | None = None


class Sampler(Protocol):
    """What every sampler provides (see the module docstring)."""

    uses_volume: bool

    def sample(self, rays: RayBatch, beta: float, train: bool, generator: torch.Generator | None) -> RaySamples: ...


def stratified(near: torch.Tensor, far: torch.Tensor, count: int, jitter: bool, *, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` samples per ray in [near, far] (R,), one per equal stratum; centred unless ``jitter``."""
    steps = torch.arange(count, dtype=near.dtype, device=near.device)
    if jitter:
        offsets = torch.rand(near.shape[0], count, dtype=near.dtype, device=near.device, generator=generator)
    else:
        offsets = torch.full((near.shape[0], count), 0.5, dtype=near.dtype, device=near.device)
    fraction = (steps + offsets) / count
    return near.unsqueeze(-1) + (far - near).unsqueeze(-1) * fraction


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, jitter: bool, *, generator: torch.Generator | None) -> torch.Tensor:
    """Inverse-CDF samples from a piecewise-constant pdf.

    Args:
        bins: (R, M + 1) sorted bin edges.
        weights: (R, M) non-negative bin weights (need not be normalised).
        count: samples per ray.
        jitter: stratified random positions (training) or evenly spaced ones (evaluation).

    Returns:
        (R, count) samples, sorted.
    """
    pdf = weights + 1e-12
    pdf = pdf / pdf.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], dim=-1).clamp(max=1.0)
    steps = torch.arange(count, dtype=bins.dtype, device=bins.device)
    if jitter:
        u = (steps + torch.rand(bins.shape[0], count, dtype=bins.dtype, device=bins.device, generator=generator)) / count
    else:
        u = ((steps + 0.5) / count).expand(bins.shape[0], count)
    u = u.contiguous()
    index = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    cdf_low, cdf_high = cdf.gather(1, index - 1), cdf.gather(1, index)
    bin_low, bin_high = bins.gather(1, index - 1), bins.gather(1, index)
    span = torch.where(cdf_high - cdf_low < 1e-12, torch.ones_like(cdf_low), cdf_high - cdf_low)
    return bin_low + (u - cdf_low) / span * (bin_high - bin_low)


def merge_sorted(*parts: torch.Tensor) -> torch.Tensor:
    """Concatenate (R, S_i) sample sets and sort each row."""
    return torch.sort(torch.cat(parts, dim=-1), dim=-1).values


def first_crossing(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first outside-to-inside crossing of SDF values (R, M + 1) along each ray: found (R,) bool
    and the index (R, 1) of the step before it (0 where none is found)."""
    inward = (values[:, :-1] > 0) & (values[:, 1:] <= 0)
    return inward.any(-1), inward.float().argmax(-1, keepdim=True)
