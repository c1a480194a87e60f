"""Where to put samples along rays. Samplers never build an autograd graph; they return sorted
distances (R, S) (and optionally a (R, S-1) mask of intervals that lie inside the sampled region).

Costs per ray, in geometry-network evaluations (N_eval) besides the S samples that are rendered:

* ``GridSampler`` (default): 0. A cached SDF volume of the scene (re-evaluated every few hundred
  steps, ~R^3 network evaluations per refresh) is looked up ``coarse_steps`` times per ray by
  trilinear interpolation; VolSDF weights of those values give an importance distribution for
  ``fine_samples``; ``uniform_samples`` stratified samples keep the whole ray covered.
* ``ErrorBoundedSampler``: VolSDF Algorithm 1 as in ObjectSDF++/ClusteringSDF: up to
  ``eb_max_iters x eb_samples_eval`` (5 x 128 = 640) evaluations per ray, 98 rendered samples.
* ``DepthGuidedSampler`` (training with sensor depth): 0; samples around the measured depth plus
  stratified ones.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import SamplerConfig
from .rendering import laplace_density, render_weights

SdfFunction = Callable[[torch.Tensor], torch.Tensor]  # (N, 3) -> (N,) scene SDF


def stratified(near: torch.Tensor, far: torch.Tensor, count: int, jitter: bool, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` samples per ray in [near, far] (R,), one per equal stratum; centred unless ``jitter``."""
    steps = torch.arange(count, dtype=near.dtype, device=near.device)
    if jitter:
        offsets = torch.rand(near.shape[0], count, dtype=near.dtype, device=near.device, generator=generator)
    else:
        offsets = torch.full((near.shape[0], count), 0.5, dtype=near.dtype, device=near.device)
    fraction = (steps + offsets) / count
    return near.unsqueeze(-1) + (far - near).unsqueeze(-1) * fraction


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, jitter: bool, generator: torch.Generator | None) -> torch.Tensor:
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
    return torch.sort(torch.cat(parts, dim=-1), dim=-1).values


class SdfVolume:
    """A cached scene-SDF volume over the scene box, looked up by trilinear interpolation.

    Args:
        bbox: (2, 3) box covered.
        resolution: vertices per axis.
    """

    def __init__(self, bbox: torch.Tensor, resolution: int) -> None:
        self.bbox = bbox
        self.resolution = resolution
        self.values: torch.Tensor | None = None  # (1, 1, D, H, W) indexed [z, y, x]
        self.voxel = float((bbox[1] - bbox[0]).max()) / (resolution - 1)

    def vertices(self) -> torch.Tensor:
        """(D*H*W, 3) vertex positions in [z][y][x] order."""
        axes = [torch.linspace(float(self.bbox[0, a]), float(self.bbox[1, a]), self.resolution, device=self.bbox.device) for a in range(3)]
        z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        return torch.stack([x, y, z], dim=-1).reshape(-1, 3)

    @torch.no_grad()
    def update(self, sdf: SdfFunction, chunk: int = 65536) -> None:
        points = self.vertices()
        values = torch.cat([sdf(points[i : i + chunk]) for i in range(0, points.shape[0], chunk)])
        r = self.resolution
        self.values = values.view(1, 1, r, r, r).float()

    def state(self) -> torch.Tensor | None:
        return None if self.values is None else self.values.clone()

    def load_state(self, values: torch.Tensor | None) -> None:
        self.values = None if values is None else values.to(self.bbox.device)

    @torch.no_grad()
    def query(self, points: torch.Tensor) -> torch.Tensor:
        """Scene SDF at points (..., 3); border values outside the box."""
        if self.values is None:
            raise RuntimeError("SdfVolume.update() must run before query()")
        shape = points.shape[:-1]
        unit = (points.reshape(1, -1, 1, 1, 3) - self.bbox[0]) / (self.bbox[1] - self.bbox[0]) * 2.0 - 1.0
        values = F.grid_sample(self.values.to(points.dtype), unit, mode="bilinear", padding_mode="border", align_corners=True)
        return values.view(shape)


class GridSampler:
    """Fast default sampler: importance sampling from a cached SDF volume, plus stratified samples."""

    def __init__(self, config: SamplerConfig, volume: SdfVolume) -> None:
        self.config = config
        self.volume = volume

    def _coarse(self, origins, directions, near, far) -> tuple[torch.Tensor, torch.Tensor]:
        """Evenly spaced bin edges (R, M+1) and the cached SDF at them (R, M+1)."""
        steps = self.config.coarse_steps
        bins = near.unsqueeze(-1) + (far - near).unsqueeze(-1) * torch.linspace(0, 1, steps + 1, dtype=near.dtype, device=near.device)
        points = origins.unsqueeze(1) + bins.unsqueeze(-1) * directions.unsqueeze(1)
        return bins, self.volume.query(points)

    @torch.no_grad()
    def first_surface(self, origins, directions, near, far) -> torch.Tensor:
        """(R,) distance of the first outside-to-inside crossing of the cached SDF, inf if none."""
        bins, sdf = self._coarse(origins, directions, near, far)
        crossing = (sdf[:, :-1] > 0) & (sdf[:, 1:] <= 0)  # (R, M)
        found = crossing.any(-1)
        i = crossing.float().argmax(-1, keepdim=True)
        s0, s1 = sdf.gather(1, i), sdf.gather(1, i + 1)
        t0, t1 = bins.gather(1, i), bins.gather(1, i + 1)
        t = t0 + (t1 - t0) * s0 / (s0 - s1).clamp_min(1e-12)
        return torch.where(found, t.squeeze(1), torch.full_like(near, float("inf")))

    @torch.no_grad()
    def sample(self, origins, directions, near, far, beta: float, train: bool, generator=None) -> torch.Tensor:
        cfg = self.config
        fine, uniform = (cfg.fine_samples, cfg.uniform_samples) if train else (cfg.eval_fine_samples, cfg.eval_uniform_samples)
        bins, sdf = self._coarse(origins, directions, near, far)
        coarse_beta = max(beta, 0.5 * self.volume.voxel)
        deltas = bins[:, 1:] - bins[:, :-1]
        mid_sdf = 0.5 * (sdf[:, 1:] + sdf[:, :-1])
        weights, _ = render_weights(laplace_density(mid_sdf, coarse_beta), deltas)
        importance = sample_pdf(bins, weights + 1e-4 * weights.sum(-1, keepdim=True) / cfg.coarse_steps, fine, train, generator)
        spread = stratified(near, far, uniform, train, generator)
        return merge_sorted(importance, spread)


class DepthGuidedSampler:
    """Training sampler for scenes with sensor depth: samples around the measured depth.

    Rays without depth fall back to the grid sampler.
    """

    def __init__(self, config: SamplerConfig, fallback: GridSampler) -> None:
        self.config = config
        self.fallback = fallback

    @torch.no_grad()
    def sample(self, origins, directions, near, far, beta: float, train: bool, generator=None, depth_distance=None) -> torch.Tensor:
        if not train or depth_distance is None:
            return self.fallback.sample(origins, directions, near, far, beta, train, generator)
        cfg = self.config
        base = self.fallback.sample(origins, directions, near, far, beta, train, generator)
        keep = base[:, :: max(1, base.shape[1] // cfg.uniform_samples)][:, : cfg.uniform_samples]
        noise = torch.randn(origins.shape[0], cfg.depth_samples, dtype=near.dtype, device=near.device, generator=generator)
        around = depth_distance.unsqueeze(-1) + cfg.depth_sigma * noise
        has_depth = (depth_distance > 0).unsqueeze(-1)
        guided = torch.where(has_depth, around, base[:, : cfg.depth_samples])
        guided = torch.maximum(torch.minimum(guided, far.unsqueeze(-1)), near.unsqueeze(-1))
        return merge_sorted(keep, guided)


class ErrorBoundedSampler:
    """VolSDF's error-bounded sampler (Algorithm 1), as used by ObjectSDF++ and ClusteringSDF.

    ``sdf`` evaluates the scene SDF without gradients. The faithful choice; it costs up to
    ``eb_max_iters * eb_samples_eval`` network evaluations per ray.
    """

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
    def sample(self, origins, directions, near, far, beta: float, train: bool, generator=None) -> torch.Tensor:
        cfg = self.config
        rays = origins.shape[0]
        beta0 = torch.full((rays, 1), float(beta), dtype=near.dtype, device=near.device)
        z = stratified(near, far, cfg.eb_samples_eval, train, generator)
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
        final = sample_pdf(z, weights + 1e-5, cfg.eb_samples, train, generator)
        if train:
            pick = torch.rand(rays, z.shape[1], device=z.device, generator=generator).argsort(-1)[:, : cfg.eb_extra]
        else:
            pick = torch.linspace(0, z.shape[1] - 1, cfg.eb_extra, device=z.device).long().expand(rays, -1)
        extra = z.gather(1, pick)
        return merge_sorted(final, near.unsqueeze(-1), far.unsqueeze(-1), extra)

    def _eval(self, origins: torch.Tensor, directions: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        points = origins.unsqueeze(1) + z.unsqueeze(-1) * directions.unsqueeze(1)
        return self.sdf(points.reshape(-1, 3)).view(z.shape)
