"""Sphere-guided training (Dogaru et al., CVPR 2023): a cloud of equal-radius spheres that tracks
the surface, and the three things it guides.

1. Pixels: training pixels are drawn where points inside the spheres project into the frame.
2. Marching: samples are placed only inside the union of each ray's ray-sphere intervals
   (:class:`clusteringsdf.model.samplers.SphereSampler`, built on :func:`samples_in_intervals`).
3. Extraction: marching cubes can be restricted to the sphere union (keeps floaters out).

Everything here is exact and vectorised, CPU friendly and without pytorch3d: candidate spheres of
a ray are those whose centre lies within the radius of the ray's line, found from two (R x S)
matrix products; intervals are unioned with a global sort + cumulative max; neighbours for the
repulsion term come from a chunked distance matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import SpheresConfig


def random_in_ball(count: int, device: torch.device, generator: torch.Generator | None, radius: float = 0.99) -> torch.Tensor:
    """Points uniform in a ball of the given radius (count, 3)."""
    direction = torch.randn(count, 3, device=device, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    rho = torch.rand(count, 1, device=device, generator=generator) ** (1.0 / 3.0)
    return radius * rho * direction


@dataclass
class RayIntervals:
    """Union of ray-sphere intervals, padded per ray: start/end (R, K), valid (R, K) bool.
    Intervals of a ray are disjoint and sorted; invalid slots have zero length."""

    start: torch.Tensor
    end: torch.Tensor
    valid: torch.Tensor

    @property
    def hit(self) -> torch.Tensor:
        return self.valid.any(dim=-1)


def ray_sphere_pairs(
    origins: torch.Tensor, directions: torch.Tensor, centres: torch.Tensor, radius: float, *, near: torch.Tensor, far: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (ray, sphere) intersections, clipped to [near, far].

    Uses t = (c - o).d and the squared distance of the centre to the ray's line
    |c - o|^2 - t^2 < r^2 (unit directions). Returns ray index (P,), t_in (P,), t_out (P,) of the
    pairs with a non-empty clipped interval.
    """
    t = directions @ centres.t() - (origins * directions).sum(-1, keepdim=True)  # (R, S)
    squared = (centres * centres).sum(-1).unsqueeze(0) - 2.0 * origins @ centres.t() + (origins * origins).sum(-1, keepdim=True)
    half_sq = radius * radius - (squared - t * t)
    ray, sphere = torch.nonzero(half_sq > 0, as_tuple=True)
    half = torch.sqrt(half_sq[ray, sphere])
    centre_t = t[ray, sphere]
    t_in = torch.maximum(centre_t - half, near[ray])
    t_out = torch.minimum(centre_t + half, far[ray])
    keep = t_out > t_in
    return ray[keep], t_in[keep], t_out[keep]


def culled_ray_sphere_pairs(
    origins: torch.Tensor, directions: torch.Tensor, centres: torch.Tensor, radius: float, *, near: torch.Tensor, far: torch.Tensor,
    max_groups: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`ray_sphere_pairs` restricted to candidate spheres, same result.

    Rays are grouped by their origin (a camera): a group's rays lie in a cone around their mean
    direction with half-angle theta, so only spheres whose centre is within theta + asin(r / dist)
    of the axis (or that contain the apex) can be hit. For a camera inside a room this keeps the
    spheres in the view frustum, a small part of the cloud. More than ``max_groups`` distinct
    origins: no culling.
    """
    apexes, group = torch.unique(origins, dim=0, return_inverse=True)
    if apexes.shape[0] > max_groups:
        return ray_sphere_pairs(origins, directions, centres, radius, near=near, far=far)
    rays, t_ins, t_outs = [], [], []
    for g in range(apexes.shape[0]):
        members = torch.nonzero(group == g).squeeze(1)
        d = directions[members]
        axis = d.mean(0)
        norm = axis.norm()
        offsets = centres - apexes[g]
        distance = offsets.norm(dim=-1).clamp_min(1e-12)
        if norm < 1e-6:
            candidates = torch.arange(centres.shape[0], device=centres.device)
        else:
            axis = axis / norm
            half_angle = torch.acos((d @ axis).min().clamp(-1.0, 1.0))
            angle = torch.acos(((offsets @ axis) / distance).clamp(-1.0, 1.0))
            margin = torch.asin((radius / distance).clamp(max=1.0))
            candidates = torch.nonzero((distance <= radius) | (angle <= half_angle + margin + 1e-4)).squeeze(1)
        ray, t_in, t_out = ray_sphere_pairs(apexes[g].expand_as(d), d, centres[candidates], radius, near=near[members], far=far[members])
        rays.append(members[ray])
        t_ins.append(t_in)
        t_outs.append(t_out)
    return torch.cat(rays), torch.cat(t_ins), torch.cat(t_outs)


def union_intervals(ray: torch.Tensor, t_in: torch.Tensor, t_out: torch.Tensor, rays: int) -> RayIntervals:
    """Union of intervals grouped by ray: disjoint sorted intervals per ray, padded to (R, K)."""
    device = t_in.device
    if ray.numel() == 0:
        empty = torch.zeros(rays, 1, device=device)
        return RayIntervals(empty, empty.clone(), torch.zeros(rays, 1, dtype=torch.bool, device=device))
    t_in, t_out = t_in.double(), t_out.double()  # keys grow with the ray index: keep precision
    span = float((t_out.max() - t_in.min()).item()) + 1.0
    base = t_in.min()
    key_in = (t_in - base) + ray.double() * span  # rays occupy disjoint key ranges
    key_out = (t_out - base) + ray.double() * span
    order = torch.argsort(key_in)
    key_in, key_out, ray_sorted = key_in[order], key_out[order], ray[order]
    running = torch.cummax(key_out, dim=0).values
    previous = torch.cat([running.new_full((1,), -math.inf), running[:-1]])
    starts_new = key_in > previous  # no overlap with anything before it (on this ray)
    interval = torch.cumsum(starts_new.long(), 0) - 1
    count = int(interval[-1].item()) + 1
    start = torch.full((count,), math.inf, dtype=key_in.dtype, device=device).scatter_reduce(0, interval, key_in, "amin")
    end = torch.full((count,), -math.inf, dtype=key_in.dtype, device=device).scatter_reduce(0, interval, key_out, "amax")
    owner = torch.zeros(count, dtype=torch.long, device=device).scatter_reduce(0, interval, ray_sorted, "amax", include_self=False)
    offset = owner.double() * span - base
    start, end = (start - offset).float(), (end - offset).float()
    per_ray = torch.bincount(owner, minlength=rays)
    first = torch.cumsum(per_ray, 0) - per_ray
    slot = torch.arange(count, device=device) - first[owner]
    width = int(per_ray.max().item())
    out_start = torch.zeros(rays, width, device=device)
    out_end = torch.zeros(rays, width, device=device)
    valid = torch.zeros(rays, width, dtype=torch.bool, device=device)
    out_start[owner, slot] = start
    out_end[owner, slot] = end
    valid[owner, slot] = True
    return RayIntervals(out_start, out_end, valid)


def samples_in_intervals(
    intervals: RayIntervals, count: int, jitter: bool, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` stratified samples per ray spread over its intervals in proportion to their length.

    Returns z (R, count) sorted and the interval index of each sample (R, count). Rays without a
    valid interval get zeros (callers replace them).
    """
    lengths = torch.where(intervals.valid, intervals.end - intervals.start, torch.zeros_like(intervals.start))
    cumulative = torch.cumsum(lengths, dim=-1)  # (R, K)
    total = cumulative[:, -1:]
    steps = torch.arange(count, device=lengths.device, dtype=lengths.dtype)
    if jitter:
        u = (steps + torch.rand(lengths.shape[0], count, device=lengths.device, generator=generator)) / count
    else:
        u = ((steps + 0.5) / count).expand(lengths.shape[0], count)
    position = u * total  # (R, count), distance along the concatenated intervals
    index = torch.searchsorted(cumulative.contiguous(), position.contiguous(), right=True).clamp(max=lengths.shape[1] - 1)
    before = torch.where(index > 0, cumulative.gather(1, (index - 1).clamp_min(0)), torch.zeros_like(position))
    z = intervals.start.gather(1, index) + (position - before)
    return z, index


class SphereCloud(nn.Module):
    """S spheres of one shared radius over the scene box.

    Args:
        config: sphere settings.
        bbox: (2, 3) normalised scene box; centres start uniform in it.
        iterations: run length (the radius reaches r_min at ``radius_end`` of it; the cloud guides
            after ``warmup`` of it).
    """

    def __init__(self, config: SpheresConfig, bbox: torch.Tensor, iterations: int) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("bbox", torch.as_tensor(bbox, dtype=torch.float32).clone())
        low, high = self.bbox[0], self.bbox[1]
        self.centres = nn.Parameter(low + (high - low) * torch.rand(config.count, 3))
        self.register_buffer("radius", torch.tensor(config.radius_max))
        self.set_run_length(iterations)

    def set_run_length(self, iterations: int) -> None:
        """The run's length: the radius schedule and the warm-up are fractions of it."""
        self.iterations = max(1, iterations)
        self.warmup = int(self.config.warmup * iterations)  # steps before the cloud guides pixels and is optimised

    def guides(self, iteration: int) -> bool:
        """Whether training pixels are drawn where the spheres project (after the warm-up)."""
        return iteration >= self.warmup

    @property
    def r(self) -> float:
        return float(self.radius)

    def radius_at(self, iteration: int) -> float:
        """r(it) = max(r_max exp(-decay it), r_min), r_min reached at radius_end of the run."""
        cfg = self.config
        decay = math.log(cfg.radius_max / cfg.radius_min) / max(1.0, cfg.radius_end * self.iterations)
        return max(cfg.radius_max * math.exp(-decay * iteration), cfg.radius_min)

    def update_radius(self, iteration: int) -> None:
        self.radius.fill_(self.radius_at(iteration))

    def inside(self) -> torch.Tensor:
        """(S,) centres inside the scene box."""
        c = self.centres.detach()
        return ((c >= self.bbox[0]) & (c <= self.bbox[1])).all(-1)

    @torch.no_grad()
    def intervals(self, origins: torch.Tensor, directions: torch.Tensor, near: torch.Tensor, far: torch.Tensor) -> RayIntervals:
        """Union of each ray's sphere intervals within [near, far] (unit directions)."""
        ray, t_in, t_out = culled_ray_sphere_pairs(origins, directions, self.centres.detach(), self.r, near=near, far=far)
        return union_intervals(ray, t_in, t_out, origins.shape[0])

    @torch.no_grad()
    def contains(self, points: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """(N,) points inside the union of the spheres."""
        centres = self.centres.detach()
        out = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
        for start in range(0, points.shape[0], chunk):
            part = points[start : start + chunk]
            out[start : start + chunk] = torch.cdist(part, centres).amin(dim=1) < self.r
        return out

    @torch.no_grad()
    def pixels(
        self, pose: torch.Tensor, intrinsics: torch.Tensor, hw: tuple[int, int], count: int, *, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` integer pixels (v, u) where random points inside random spheres project into the
        frame (in front of the camera); fewer if not enough spheres are visible."""
        centres = self.centres.detach()
        pick = torch.randint(0, centres.shape[0], (4 * count,), device=centres.device, generator=generator)
        points = centres[pick] + self.r * random_in_ball(pick.shape[0], centres.device, generator)
        camera = (points - pose[:3, 3]) @ pose[:3, :3]
        z = camera[:, 2]
        u = intrinsics[0, 0] * camera[:, 0] / z.clamp_min(1e-6) + intrinsics[0, 2]
        v = intrinsics[1, 1] * camera[:, 1] / z.clamp_min(1e-6) + intrinsics[1, 2]
        u, v = torch.round(u), torch.round(v)
        visible = (z > 1e-3) & (u >= 0) & (u <= hw[1] - 1) & (v >= 0) & (v <= hw[0] - 1)
        v, u = v[visible][:count].long(), u[visible][:count].long()
        return v, u
