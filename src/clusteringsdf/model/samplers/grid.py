"""The default sampler: importance sampling from a cached SDF volume, plus stratified samples.

Cost per ray: 0 geometry-network evaluations. A cached SDF volume of the scene (:class:`SdfVolume`,
re-evaluated every few hundred steps, ~R^3 network evaluations per refresh) is looked up
``coarse_steps`` times per ray (``eval_coarse_steps`` for test views) by trilinear interpolation;
VolSDF weights of those values give an importance distribution for ``fine_samples``;
``uniform_samples`` stratified samples keep the whole ray covered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import SamplerConfig
from ...sampling.rays import RayBatch
from ..field import map_chunks
from ..rendering import laplace_density, render_weights
from .base import RaySamples, SdfFunction, first_crossing, merge_sorted, sample_pdf, stratified


class SdfVolume(nn.Module):
    """A cached scene-SDF volume over the scene box, looked up by trilinear interpolation.

    Buffers (saved with the model's state dict): ``bbox`` (2, 3) box covered, ``values``
    (1, 1, D, H, W) the scene SDF at the vertices indexed [z, y, x], ``ready`` () whether
    ``values`` holds an evaluation yet.

    Args:
        bbox: (2, 3) box covered.
        resolution: vertices per axis.
    """

    def __init__(self, bbox: torch.Tensor, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.register_buffer("bbox", torch.as_tensor(bbox, dtype=torch.float32).clone())
        self.register_buffer("values", torch.zeros(1, 1, resolution, resolution, resolution))
        self.register_buffer("ready", torch.tensor(False))

    @property
    def is_ready(self) -> bool:
        return bool(self.ready)

    @property
    def voxel(self) -> float:
        """Edge length of one cell along the longest box side."""
        return float((self.bbox[1] - self.bbox[0]).max()) / (self.resolution - 1)

    def vertices(self) -> torch.Tensor:
        """(D*H*W, 3) vertex positions in [z][y][x] order."""
        axes = [torch.linspace(float(self.bbox[0, a]), float(self.bbox[1, a]), self.resolution, device=self.bbox.device) for a in range(3)]
        z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        return torch.stack([x, y, z], dim=-1).reshape(-1, 3)

    @torch.no_grad()
    def update(self, sdf: SdfFunction, chunk: int = 65536) -> None:
        """Re-evaluate the volume with ``sdf`` (chunked)."""
        values = map_chunks(sdf, self.vertices(), chunk=chunk)
        r = self.resolution
        self.values.copy_(values.view(1, 1, r, r, r))
        self.ready.fill_(True)

    @torch.no_grad()
    def along(self, rays: RayBatch, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Evenly spaced distances (R, steps + 1) from each ray's near to its far bound, and the
        cached scene SDF there (R, steps + 1)."""
        near, far = rays.near, rays.far
        bins = near.unsqueeze(-1) + (far - near).unsqueeze(-1) * torch.linspace(0, 1, steps + 1, dtype=near.dtype, device=near.device)
        return bins, self.query(rays.origins.unsqueeze(1) + bins.unsqueeze(-1) * rays.directions.unsqueeze(1))

    @torch.no_grad()
    def query(self, points: torch.Tensor) -> torch.Tensor:
        """Scene SDF at points (..., 3); border values outside the box."""
        if not self.is_ready:
            raise RuntimeError("SdfVolume.update() must run before query()")
        shape = points.shape[:-1]
        unit = (points.reshape(1, -1, 1, 1, 3) - self.bbox[0]) / (self.bbox[1] - self.bbox[0]) * 2.0 - 1.0
        values = F.grid_sample(self.values.to(points.dtype), unit, mode="bilinear", padding_mode="border", align_corners=True)
        return values.view(shape)


class GridSampler:
    """Importance samples from the cached volume + stratified samples (see the module docstring)."""

    uses_volume = True

    def __init__(self, config: SamplerConfig, volume: SdfVolume) -> None:
        self.config = config
        self.volume = volume

    @torch.no_grad()
    def first_surface(self, rays: RayBatch) -> torch.Tensor:
        """(R,) distance of the first outside-to-inside crossing of the cached SDF, inf if none."""
        bins, sdf = self.volume.along(rays, self.config.coarse_steps)
        found, i = first_crossing(sdf)
        s0, s1 = sdf.gather(1, i), sdf.gather(1, i + 1)
        t0, t1 = bins.gather(1, i), bins.gather(1, i + 1)
        t = t0 + (t1 - t0) * s0 / (s0 - s1).clamp_min(1e-12)
        return torch.where(found, t.squeeze(1), torch.full_like(rays.near, float("inf")))

    @torch.no_grad()
    def sample(self, rays: RayBatch, beta: float, train: bool, generator: torch.Generator | None = None) -> RaySamples:
        cfg = self.config
        fine, uniform, steps = (cfg.fine_samples, cfg.uniform_samples, cfg.coarse_steps) if train else (cfg.eval_fine_samples, cfg.eval_uniform_samples, cfg.eval_coarse_steps)
        bins, sdf = self.volume.along(rays, steps)
        coarse_beta = max(beta, 0.5 * self.volume.voxel)
        deltas = bins[:, 1:] - bins[:, :-1]
        mid_sdf = 0.5 * (sdf[:, 1:] + sdf[:, :-1])
        weights, _ = render_weights(laplace_density(mid_sdf, coarse_beta), deltas)
        importance = sample_pdf(bins, weights + 1e-4 * weights.sum(-1, keepdim=True) / steps, fine, jitter=train, generator=generator)
        spread = stratified(rays.near, rays.far, uniform, jitter=train, generator=generator)
        return RaySamples(merge_sorted(importance, spread))
