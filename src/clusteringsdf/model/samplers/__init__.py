"""Where to put samples along rays: one interface (:class:`Sampler`), four samplers, one registry.

Costs per ray, in geometry-network evaluations besides the S samples that are rendered:

* ``grid`` (default, :mod:`.grid`): 0, importance samples from a cached SDF volume;
* ``error_bounded`` (:mod:`.error_bounded`): VolSDF Algorithm 1 as in ObjectSDF++, up to 640;
* ``depth`` (:mod:`.depth`, training with sensor depth): 0, samples around the measured depth;
* ``spheres`` (:mod:`.spheres`): 0, samples inside the sphere-cloud intervals (grid fallback).

:data:`SAMPLERS` maps ``config.sampler.kind`` to a builder of the (training, evaluation) pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ...config import Config
from ...sampling.spheres import SphereCloud
from .base import RaySamples, Sampler, SdfFunction, first_crossing, merge_sorted, sample_pdf, stratified
from .depth import DepthGuidedSampler
from .error_bounded import ErrorBoundedSampler
from .grid import GridSampler, SdfVolume
from .spheres import SphereSampler


@dataclass
class SamplerSet:
    """The samplers of a model: ``train`` and ``eval`` samplers, and the sphere cloud they march
    through (sphere-guided runs only; the model owns it as a trainable module)."""

    train: Sampler
    eval: Sampler
    spheres: SphereCloud | None = None


def _grid(config: Config, volume: SdfVolume, sdf: SdfFunction, bbox: torch.Tensor) -> SamplerSet:
    grid = GridSampler(config.sampler, volume)
    return SamplerSet(grid, grid)


def _error_bounded(config: Config, volume: SdfVolume, sdf: SdfFunction, bbox: torch.Tensor) -> SamplerSet:
    sampler = ErrorBoundedSampler(config.sampler, sdf)
    return SamplerSet(sampler, sampler)


def _depth(config: Config, volume: SdfVolume, sdf: SdfFunction, bbox: torch.Tensor) -> SamplerSet:
    grid = GridSampler(config.sampler, volume)
    return SamplerSet(DepthGuidedSampler(config.sampler, grid), grid)


def _spheres(config: Config, volume: SdfVolume, sdf: SdfFunction, bbox: torch.Tensor) -> SamplerSet:
    cloud = SphereCloud(config.spheres, bbox, config.train.iterations)
    sampler = SphereSampler(cloud, config.sampler.sphere_samples, GridSampler(config.sampler, volume))
    return SamplerSet(sampler, sampler, cloud)


SAMPLERS: dict[str, Callable[[Config, SdfVolume, SdfFunction, torch.Tensor], SamplerSet]] = {
    "grid": _grid,
    "error_bounded": _error_bounded,
    "depth": _depth,
    "spheres": _spheres,
}


def build_samplers(config: Config, volume: SdfVolume, sdf: SdfFunction, bbox: torch.Tensor) -> SamplerSet:
    """The samplers ``config.sampler.kind`` names (validated by the config)."""
    return SAMPLERS[config.sampler.kind](config, volume, sdf, bbox)


__all__ = [
    "SAMPLERS", "DepthGuidedSampler", "ErrorBoundedSampler", "GridSampler", "RaySamples", "Sampler", "SamplerSet",
    "SdfVolume", "SphereSampler", "build_samplers", "first_crossing", "merge_sorted", "sample_pdf", "stratified",
]
