"""Training sampler for scenes with sensor depth: samples around the measured depth.

Cost per ray: 0 geometry-network evaluations. Rays without depth, and every ray at evaluation, use
the fallback (grid) sampler.
"""

from __future__ import annotations

import torch

from ...config import SamplerConfig
from ...sampling.rays import RayBatch
from .base import RaySamples, Sampler, merge_sorted


class DepthGuidedSampler:
    def __init__(self, config: SamplerConfig, fallback: Sampler) -> None:
        self.config = config
        self.fallback = fallback
        self.uses_volume = fallback.uses_volume

    @torch.no_grad()
    def sample(self, rays: RayBatch, beta: float, train: bool, generator: torch.Generator | None = None) -> RaySamples:
        if not train or rays.depth is None:
            return self.fallback.sample(rays, beta, train, generator)
        cfg = self.config
        distance = torch.where(rays.depth > 0, rays.depth / rays.dz, torch.zeros_like(rays.depth))  # z-depth -> ray distance
        base = self.fallback.sample(rays, beta, train, generator).z
        keep = base[:, :: max(1, base.shape[1] // cfg.uniform_samples)][:, : cfg.uniform_samples]
        noise = torch.randn(rays.origins.shape[0], cfg.depth_samples, dtype=rays.near.dtype, device=rays.near.device, generator=generator)
        around = distance.unsqueeze(-1) + cfg.depth_sigma * noise
        has_depth = (distance > 0).unsqueeze(-1)
        guided = torch.where(has_depth, around, base[:, : cfg.depth_samples])
        guided = torch.maximum(torch.minimum(guided, rays.far.unsqueeze(-1)), rays.near.unsqueeze(-1))
        return RaySamples(merge_sorted(keep, guided))
