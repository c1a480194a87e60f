"""VolSDF's error-bounded sampler (Algorithm 1), as used by ObjectSDF++ and ClusteringSDF.

The faithful choice; it costs up to ``eb_max_iters x eb_samples_eval`` (5 x 128 = 640) geometry-network
evaluations per ray and renders 98 samples (ObjectSDF++ defaults: 64 + 32 + near + far).
"""

from __future__ import annotations

import math

import torch

from ...config import SamplerConfig
from ...sampling.rays import RayBatch
from ..rendering import laplace_density, render_weights
from .base import RaySamples, SdfFunction, merge_sorted, sample_pdf, stratified


class ErrorBoundedSampler:
    """``sdf`` evaluates the scene SDF without gradients."""

    uses_volume = False

    def __init__(self, config: SamplerConfig, sdf: SdfFunction) -> None:
        self.config = config
        self.sdf = sdf

    @staticmethod
    def _distance_bound(z: torch.Tensor, sdf: torch.Tensor) -> torch.Tensor:
        """VolSDF Theorem 1: lower bound d* of |SDF| inside each interval (R, S-1)."""
        a = z[:, 1:] - z[:, :-1]
        b, c = sdf[:, :-1].abs(), sdf[:, 1:].abs()
        first = a * a + b * b <= c * c
        second = a * a + c * c <= b * b
        s = 0.5 * (a + b + c)
        area = torch.sqrt((s * (s - a) * (s - b) * (s - c)).clamp_min(0.0))
        d = torch.where(b + c > a, 2.0 * area / a.clamp_min(1e-10), torch.zeros_like(a))
        d = torch.where(first, b, torch.where(second, c, d))
        same_sign = sdf[:, :-1].sign() * sdf[:, 1:].sign() > 0
        return torch.where(same_sign, d, torch.zeros_like(d))

    @staticmethod
    def _error(z: torch.Tensor, sdf: torch.Tensor, d_star: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Opacity error bound per interval and its max per ray, for per-ray beta (R, 1)."""
        deltas = z[:, 1:] - z[:, :-1]
        density = laplace_density(sdf[:, :-1], beta)
        errors = torch.exp(-d_star / beta) * deltas**2 / (4 * beta**2)
        cumulative = torch.cumsum(errors, dim=-1)
        optical = torch.cat([torch.zeros_like(deltas[:, :1]), torch.cumsum(density * deltas, -1)[:, :-1]], -1)
        bound = (torch.clamp(torch.exp(cumulative), max=1e6) - 1.0) * torch.exp(-optical)
        return bound, bound.max(dim=-1).values

    @torch.no_grad()
    def sample(self, rays: RayBatch, beta: float, train: bool, generator: torch.Generator | None = None) -> RaySamples:
        cfg = self.config
        origins, directions, near, far = rays.origins, rays.directions, rays.near, rays.far
        count = origins.shape[0]
        beta0 = torch.full((count, 1), float(beta), dtype=near.dtype, device=near.device)
        z = stratified(near, far, cfg.eb_samples_eval, jitter=train, generator=generator)
        z = torch.cat([near.unsqueeze(-1), z[:, 1:-1], far.unsqueeze(-1)], dim=-1)
        sdf = self._eval(origins, directions, z)
        deltas = z[:, 1:] - z[:, :-1]
        beta_plus = torch.sqrt((deltas**2).sum(-1, keepdim=True) / (4 * math.log(1 + cfg.eb_eps)))
        converged = False
        for round_index in range(cfg.eb_max_iters):
            d_star = self._distance_bound(z, sdf)
            _, max_error = self._error(z, sdf, d_star, beta0)
            ok = max_error <= cfg.eb_eps
            beta_plus = torch.where(ok.unsqueeze(-1), beta0, beta_plus)
            low, high = beta0.clone(), beta_plus.clone()
            for _ in range(cfg.eb_beta_iters):
                mid = 0.5 * (low + high)
                _, err = self._error(z, sdf, d_star, mid)
                good = (err <= cfg.eb_eps).unsqueeze(-1)
                high = torch.where(good, mid, high)
                low = torch.where(good, low, mid)
            beta_plus = torch.where(ok.unsqueeze(-1), beta_plus, high)
            converged = bool((beta_plus <= beta0 + 1e-12).all())
            if converged or round_index == cfg.eb_max_iters - 1:
                break
            bound, _ = self._error(z, sdf, d_star, beta_plus)
            density = laplace_density(sdf[:, :-1], beta_plus)
            deltas = z[:, 1:] - z[:, :-1]
            transmittance = torch.exp(-torch.cat([torch.zeros_like(deltas[:, :1]), torch.cumsum(density * deltas, -1)[:, :-1]], -1))
            pdf = bound * transmittance + 1e-6
            new_z = sample_pdf(z, pdf, cfg.eb_samples_eval, jitter=False, generator=None)
            new_sdf = self._eval(origins, directions, new_z)
            z, order = torch.sort(torch.cat([z, new_z], -1), -1)
            sdf = torch.cat([sdf, new_sdf], -1).gather(1, order)
        deltas = z[:, 1:] - z[:, :-1]
        density = laplace_density(sdf[:, :-1], beta_plus)
        weights, _ = render_weights(density, deltas)
        final = sample_pdf(z, weights + 1e-5, cfg.eb_samples, jitter=train, generator=generator)
        if train:
            pick = torch.rand(count, z.shape[1], device=z.device, generator=generator).argsort(-1)[:, : cfg.eb_extra]
        else:
            pick = torch.linspace(0, z.shape[1] - 1, cfg.eb_extra, device=z.device).long().expand(count, -1)
        extra = z.gather(1, pick)
        return RaySamples(merge_sorted(final, near.unsqueeze(-1), far.unsqueeze(-1), extra))

    def _eval(self, origins: torch.Tensor, directions: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        points = origins.unsqueeze(1) + z.unsqueeze(-1) * directions.unsqueeze(1)
        return self.sdf(points.reshape(-1, 3)).view(z.shape)
