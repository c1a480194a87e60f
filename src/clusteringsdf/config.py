"""Dataclass configs and named presets.

One :class:`Config` holds everything a run needs; it is written to ``RUN/config.json`` and read back
on ``--resume``. Presets: ``tiny`` (unit tests: seconds on a laptop CPU), ``cpu`` (the default: a
synthetic room in minutes on 2 cores), ``paper`` (the published ClusteringSDF/ObjectSDF++ settings,
meant for a GPU).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("objectsdf", "instance", "semantic", "panoptic", "contrastive")
LABEL_SOURCES = ("gt", "m2f")
SAMPLERS = ("grid", "error_bounded", "depth", "spheres")


@dataclass
class DataConfig:
    downscale: float = 1.0  # working resolution = native / downscale
    labels: str = "m2f"  # "gt" (view-consistent rs_*) or "m2f" (raw per-view machine labels)


@dataclass
class FieldConfig:
    """Geometry, colour and semantic networks (see model/field.py)."""

    channels: int = 32  # C SDF channels; channel 0 is the background (inside-out room shell)
    grid_levels: int = 8
    grid_features: int = 2
    grid_log2_size: int = 16
    grid_base_resolution: int = 16
    grid_finest_resolution: int = 256
    pe_frequencies: int = 6
    hidden_dim: int = 64
    hidden_layers: int = 2
    feature_dim: int = 32
    color_hidden_dim: int = 64
    color_hidden_layers: int = 2
    view_frequencies: int = 4
    color_uses_normal: bool = False  # IDR-style colour input (needs the SDF gradient at every sample: ~1.8x slower)
    init_radius: float = 0.9  # geometric init: background ~ r - |x|
    object_init: str = "background"  # background: s_k = s_0 + offset | sphere: s_k ~ |x| - r_obj (ObjectSDF++)
    object_init_offset: float = 0.05
    weight_norm: bool = True
    softplus_beta: float = 100.0
    beta_init: float = 0.1  # Laplace density scale
    beta_min: float = 1e-4
    semantic_hidden_dim: int = 64
    embedding_dim: int = 3  # contrastive baseline only


@dataclass
class SamplerConfig:
    """Ray sampling (see model/ray_samplers.py). Costs are network evaluations per ray."""

    kind: str = "grid"  # grid | error_bounded | depth | spheres
    near: float = 0.01  # normalised units
    # grid: a cached SDF volume (no network) locates the surface, then importance + uniform samples.
    grid_resolution: int = 64
    grid_update_every: int = 100
    coarse_steps: int = 128  # cached-volume lookups per ray (free: no network)
    fine_samples: int = 24
    uniform_samples: int = 8
    # error_bounded: VolSDF Algorithm 1 (ObjectSDF++ defaults: 128 eval x <=5 rounds, 64 + 32 + 2 = 98).
    eb_samples_eval: int = 128
    eb_samples: int = 64
    eb_extra: int = 32
    eb_eps: float = 0.1
    eb_beta_iters: int = 10
    eb_max_iters: int = 5
    # depth: samples around the sensor depth (training only; falls back to grid without depth).
    depth_samples: int = 16
    depth_sigma: float = 0.02  # normalised units
    # spheres: samples per ray inside the union of the sphere intervals (sampling/spheres.py).
    sphere_samples: int = 16
    # evaluation: samples for rendering test views.
    eval_fine_samples: int = 12
    eval_uniform_samples: int = 4


@dataclass
class LossConfig:
    rgb: float = 1.0
    depth: float = 1.0  # metric depth L1 in normalised units (ObjectSDF++ uses 0.1 for monocular depth)
    depth_mode: str = "metric"  # metric | ssi (scale-and-shift invariant, for monocular depth)
    normal_l1: float = 0.0  # normal terms need the SDF gradient at every sample (paper: 0.05 / 0.05)
    normal_cos: float = 0.0
    eikonal: float = 0.1
    smooth: float = 0.005
    eikonal_points: int = 1024  # uniform points in the scene box (+ one near-surface point per ray)
    smooth_epsilon: float = 0.005
    collision: float = 0.5
    collision_start: float = 0.5  # fraction of the run after which the collision term is on
    opacity_bce: float = 1.0  # weight of ObjectSDF++'s segmentation loss (mode objectsdf)
    segmentation_loss: str = "bce"  # bce (ObjectSDF++) | nll (cross entropy over channels)
    semantic: float = 0.5  # semantic head, confidence-weighted cross entropy
    # Object opacities, in the segmentation losses and in rendered channels alike: "share" = each
    # channel's share of the density where the ray terminates (scene weights detached: segmentation
    # decides who owns a surface, not where it is; no reward for density in free space);
    # "occlusion" = ObjectSDF++'s occlusion-aware opacity with gradients through the
    # transmittance, as published.
    segmentation_opacity: str = "share"
    vote_decay: float = 0.999  # per-step decay of the channel -> class votes of the training labels


@dataclass
class ClusteringConfig:
    """ClusteringSDF losses (paper Eq. 3-9; defaults = paper appendix)."""

    diff: float = 20.0  # lambda1
    onehot: float = 0.5  # lambda2
    reg: float = 1e4  # lambda3
    bg: float = 0.2  # lambda4
    fg: float = 0.1  # lambda5
    sem: float = 0.15
    sem_ray: float = 0.0  # semantic mode, our addition (cpu/tiny presets: 0.5): confidence-weighted cross entropy of each ray's channel shares
    cross_view: float = 3.0
    cross_view_frames: int = 4
    cross_view_rays: int = 64
    use_diff: bool = True
    use_onehot: bool = True
    use_reg: bool = True
    use_fgbg: bool = True
    use_crossview: bool = True
    reg_axis: str = "channels"  # channels (code/appendix) | rays (intra-cluster variance)
    compact: float = 1000.0  # our addition: intra-cluster compactness mean ||P_r - mu_g||^2 (fights fragmentation)
    keyframe_fraction: float = 0.1
    keyframe_probability: float = 0.2
    label_rays: int = 512  # label-comprehensive share of the batch
    contrastive_rays: int = 1024


@dataclass
class SpheresConfig:
    """Sphere-guided training (sampling/spheres.py, training/spheres.py); lengths in normalised units."""

    count: int = 4096
    radius_max: float = 0.2
    radius_min: float = 0.03
    radius_end: float = 0.3  # fraction of the run at which r_min is reached
    lr: float = 1e-3
    warmup: float = 0.1  # fraction of the run before sphere-guided pixels and sphere updates
    guided_fraction: float = 0.75  # share of a frame's free pixels drawn where spheres project (rest uniform)
    resample_every: int = 250
    attraction_points: int = 1024  # spheres attracted per step (a random subset)
    neighbors: int = 10
    neighbours_every: int = 50  # steps between nearest-neighbour searches
    repulsion: float = 1e-4
    repulsion_radius_factor: float = 2.0


@dataclass
class TrainConfig:
    iterations: int = 4000
    rays: int = 1024
    frames_per_batch: int = 4
    lr: float = 5e-4
    grid_lr_factor: float = 20.0
    lr_final_factor: float = 0.1  # exponential decay to this factor over the run
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    threads: int = 0  # 0 = torch default
    render_chunk: int = 4096


@dataclass
class InferenceConfig:
    """Panoptic fusion at render time (changing it needs no retraining)."""

    min_segment_fraction: float = 2e-4  # thing segments smaller than this share of all rendered pixels are fragments


@dataclass
class Config:
    preset: str = "cpu"
    mode: str = "panoptic"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    clustering: ClusteringConfig = dataclasses.field(default_factory=ClusteringConfig)
    spheres: SpheresConfig = dataclasses.field(default_factory=SpheresConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            sub = _SECTIONS.get(f.name)
            if sub is not None:
                known = {g.name for g in dataclasses.fields(sub)}
                unknown = set(value) - known
                if unknown:
                    raise ValueError(f"unknown config keys in '{f.name}': {sorted(unknown)}")
                value = sub(**value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def load(cls, path: Path) -> "Config":
        return cls.from_dict(json.loads(path.read_text()))


_SECTIONS = {
    "data": DataConfig,
    "field": FieldConfig,
    "sampler": SamplerConfig,
    "loss": LossConfig,
    "clustering": ClusteringConfig,
    "spheres": SpheresConfig,
    "train": TrainConfig,
    "inference": InferenceConfig,
}


def preset(name: str) -> Config:
    """A named preset: ``tiny``, ``cpu`` or ``paper``."""
    if name == "cpu":
        return Config(preset="cpu", clustering=ClusteringConfig(sem_ray=0.5))
    if name == "tiny":
        return Config(
            preset="tiny",
            field=FieldConfig(
                channels=8,
                grid_levels=4,
                grid_log2_size=12,
                grid_finest_resolution=64,
                hidden_dim=32,
                feature_dim=16,
                color_hidden_dim=32,
                semantic_hidden_dim=32,
            ),
            sampler=SamplerConfig(
                grid_resolution=24, grid_update_every=20, coarse_steps=48, fine_samples=12, uniform_samples=4,
                eval_fine_samples=16, eval_uniform_samples=8,
            ),
            loss=LossConfig(eikonal_points=128),
            clustering=ClusteringConfig(label_rays=64, cross_view_frames=2, cross_view_rays=16, contrastive_rays=128, sem_ray=0.5),
            spheres=SpheresConfig(count=256, resample_every=20, attraction_points=128),
            train=TrainConfig(iterations=60, rays=128, frames_per_batch=2, checkpoint_every=20, log_every=10, render_chunk=2048),
        )
    if name == "paper":
        return Config(
            preset="paper",
            field=FieldConfig(
                channels=50,
                color_uses_normal=True,
                grid_levels=16,
                grid_log2_size=19,
                grid_finest_resolution=2048,
                hidden_dim=256,
                feature_dim=256,
                color_hidden_dim=256,
                semantic_hidden_dim=256,
            ),
            sampler=SamplerConfig(kind="error_bounded"),
            loss=LossConfig(depth=0.0, normal_l1=0.05, normal_cos=0.05, collision_start=0.5),
            train=TrainConfig(iterations=120_000, rays=1024, frames_per_batch=1, checkpoint_every=5000, log_every=100),
        )
    raise ValueError(f"unknown preset '{name}' (choose tiny, cpu or paper)")


PRESETS = ("tiny", "cpu", "paper")
