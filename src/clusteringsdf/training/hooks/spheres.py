"""Optimising the sphere cloud next to the field (sphere-guided training, reference §1).

Schedule: every step, after the optimiser step: the radius follows its schedule; after the warm-up the
centres move by Adam on ``L = mean s(c)^2 + w_r mean_{pairs closer than 2r} r / d`` (surface
attraction with the field frozen, plus repulsion between nearest neighbours); every
``resample_every`` steps spheres that left the box or hold no surface (|s(c)| > r: an SDF that far
from zero has no zero level inside the sphere) are moved next to good ones, their Adam moments
reset. Centres are clamped to the box after every step. Nearest neighbours are searched every
``neighbours_every`` steps and after a resampling. State: the centres' Adam moments and the
neighbour lists (the centres and the radius are the model's, checkpointed with it).
"""

from __future__ import annotations

from typing import Any

import torch

from ...config import SpheresConfig
from ...model import RenderOutput, map_chunks
from ...model.field import SDFField
from ...sampling.rays import RayBatch
from ...sampling.spheres import SphereCloud
from .base import HookContext, TrainingHook


def nearest_neighbours(points: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """(S, k) indices of the k nearest other points (chunked distance matrix, no KD-tree needed)."""
    out = []
    for start in range(0, points.shape[0], chunk):
        distance = torch.cdist(points[start : start + chunk], points)
        rows = torch.arange(start, min(start + chunk, points.shape[0]), device=points.device)
        distance[rows - start, rows] = float("inf")
        out.append(distance.topk(min(k, points.shape[0] - 1), dim=1, largest=False).indices)
    return torch.cat(out)


class SphereOptimisation(TrainingHook):
    """Adam on the sphere centres, the radius schedule and the resampling (sphere-guided runs).

    Args:
        cloud: the sphere cloud (a module of the model, so it is checkpointed with it).
        field: the SDF field (frozen for the attraction term).
        config: sphere settings.
        generator: the run's random generator.
    """

    name = "sphere_optimisation"

    def __init__(self, cloud: SphereCloud, field: SDFField, config: SpheresConfig, generator: torch.Generator) -> None:
        self.cloud = cloud
        self.field = field
        self.config = config
        self.generator = generator
        self.optimizer = torch.optim.Adam([cloud.centres], lr=config.lr)
        self.neighbours: torch.Tensor | None = None  # (S, k) nearest other spheres
        self.neighbours_at: int | None = None  # iteration they were found at

    @classmethod
    def attach(cls, context: HookContext) -> "SphereOptimisation | None":
        """For sphere-guided runs; the cloud also guides the batch builder's pixels after its warm-up."""
        cloud = context.model.spheres
        if cloud is None:
            return None
        context.batches.guide = cloud
        return cls(cloud, context.model.field, context.config.spheres, context.generator)

    def after_step(self, iteration: int, rays: RayBatch, out: RenderOutput) -> None:
        self.step(iteration)

    def set_run_length(self, iterations: int) -> None:
        self.cloud.set_run_length(iterations)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "neighbours": self.neighbours, "neighbours_at": self.neighbours_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.neighbours = state.get("neighbours")
        self.neighbours_at = state.get("neighbours_at")

    def _scene_sdf(self, points: torch.Tensor, with_jacobian: bool):
        geometry = self.field.geometry(points, with_jacobian=with_jacobian)
        return geometry.scene_sdf, (geometry.scene_gradient() if with_jacobian else None)

    @torch.no_grad()
    def resample(self) -> int:
        """Move spheres outside the box or without surface next to good ones; returns how many moved."""
        cloud = self.cloud
        centres = cloud.centres.data
        sdf = map_chunks(lambda points: self._scene_sdf(points, False)[0], centres, chunk=8192)
        inside = cloud.inside()
        bad = ~inside | (sdf.abs() > cloud.r)
        if bool(bad.all()):  # no sphere holds surface yet: only bring wanderers back
            bad = ~inside
        good = (~bad).nonzero().squeeze(-1)
        moved = bad.nonzero().squeeze(-1)
        if moved.numel() == 0:
            return 0
        low, high = cloud.bbox[0], cloud.bbox[1]
        if good.numel() == 0:  # nothing to copy: redraw uniformly in the box
            centres[moved] = low + (high - low) * torch.rand(moved.numel(), 3, device=centres.device, generator=self.generator)
        else:
            target = good[torch.randint(0, good.numel(), (moved.numel(),), device=centres.device, generator=self.generator)]
            jitter = torch.randn(moved.numel(), 3, device=centres.device, generator=self.generator) * (self.config.radius_min / 2)
            centres[moved] = torch.maximum(torch.minimum(centres[target] + jitter, high), low)
        state = self.optimizer.state.get(cloud.centres, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][moved] = 0.0
        self.neighbours = None
        return int(moved.numel())

    def step(self, iteration: int) -> dict[str, float]:
        """Radius update and, after the warm-up, one optimisation step of the centres."""
        cloud, cfg = self.cloud, self.config
        cloud.update_radius(iteration)
        if not cloud.guides(iteration):
            return {}
        stats: dict[str, float] = {}
        if iteration > cloud.warmup and iteration % cfg.resample_every == 0:
            stats["resampled"] = float(self.resample())
        centres = cloud.centres
        count = centres.shape[0]
        subset = torch.randint(0, count, (min(count, cfg.attraction_points),), device=centres.device, generator=self.generator)
        with torch.no_grad():
            sdf, gradient = self._scene_sdf(centres.data[subset], True)
        # d/dc mean s(c)^2 = 2 s grad s / n, with the field frozen (computed, not backpropagated).
        attraction_grad = torch.zeros_like(centres.data)
        attraction_grad.index_add_(0, subset, 2.0 * sdf.unsqueeze(-1) * gradient / subset.numel())
        if self.neighbours is None or self.neighbours_at is None or iteration - self.neighbours_at >= cfg.neighbours_every:
            self.neighbours = nearest_neighbours(centres.data, cfg.neighbors)
            self.neighbours_at = iteration
        self.optimizer.zero_grad(set_to_none=True)
        distance = (centres.unsqueeze(1) - centres[self.neighbours]).norm(dim=-1)  # (S, k)
        close = (distance < cfg.repulsion_radius_factor * cloud.r) & (distance > 1e-4)
        if bool(close.any()):
            repulsion = cfg.repulsion * (cloud.r / distance[close]).mean()
            repulsion.backward()
        if centres.grad is None:
            centres.grad = attraction_grad
        else:
            centres.grad += attraction_grad
        self.optimizer.step()
        with torch.no_grad():  # spheres never leave the scene box
            torch.maximum(torch.minimum(centres, cloud.bbox[1]), cloud.bbox[0], out=centres.data)
        stats["attraction"] = float((sdf**2).mean())
        return stats
