"""Dataclass configs, named presets and their validation.

One :class:`Config` holds everything a run needs; it is written to ``RUN/config.json`` and read back
on ``--resume``. Presets: ``tiny`` (unit tests: seconds on a laptop CPU), ``cpu`` (the default: a
synthetic room in minutes on 2 cores), ``paper`` (the published ClusteringSDF/ObjectSDF++ settings,
meant for a GPU).

Configs are frozen: nothing changes a config after it is built. :meth:`Config.with_values` returns a
new, validated config with some values replaced (``{"train.iterations": 500, "mode": "instance"}``).
Every value is checked when a config is built: an option outside its allowed values, a wrong type or
an out-of-range number raises :class:`ConfigError` naming the key (``sampler.kind: 'foo' is not one
of grid, error_bounded, depth, spheres``). Settings that follow from the data (the number of
channels a semantic-mode run needs, say) are computed where they are used, never written back.

``mode`` names a training method of :data:`clusteringsdf.methods.METHODS`, the one registry of
methods; it is checked there (configs sit below the methods in the layering).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from .errors import ClusteringSDFError

LabelSource = Literal["gt", "m2f"]
SamplerKind = Literal["grid", "error_bounded", "depth", "spheres"]
DepthMode = Literal["metric", "ssi"]
SegmentationLoss = Literal["bce", "nll"]
OpacityKind = Literal["share", "occlusion"]
RegAxis = Literal["channels", "rays"]
ObjectInit = Literal["background", "sphere"]
JoinMode = Literal["auto", "on", "off"]
PresetName = Literal["tiny", "cpu", "gpu", "paper"]

LABEL_SOURCES: tuple[str, ...] = typing.get_args(LabelSource)
SAMPLERS: tuple[str, ...] = typing.get_args(SamplerKind)
PRESETS: tuple[str, ...] = typing.get_args(PresetName)


class ConfigError(ClusteringSDFError):
    """A configuration value is invalid: the message names the key and what is allowed."""


# ------------------------------------------------------------------------------------ validation


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key}: expected {expected}, got {value!r}")


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    """The value if it fits the annotation (ints are accepted for floats), else a ConfigError."""
    if typing.get_origin(annotation) is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _type_error(key, value, "true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, value, "a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _type_error(key, value, "a string")
        return value
    return value


def parse_value(key: str, text: str, annotation: Any) -> Any:
    """A command-line string converted to the type of a config field (``--set key=value``)."""
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise _type_error(key, text, "true or false")
    if annotation in (int, float):
        try:
            number = float(text)
        except ValueError:
            raise _type_error(key, text, "an integer" if annotation is int else "a number") from None
        if annotation is int:
            if not number.is_integer():
                raise _type_error(key, text, "an integer")
            return int(number)
        return number
    return text


class _Section:
    """Validation shared by every config section: types and allowed values of every field, then the
    section's own range checks (:meth:`_check_ranges`)."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            checked = _check_value(f"{self.section}.{f.name}", getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, checked)
        self._check_ranges()

    def _check_ranges(self) -> None:
        pass

    def _require(self, condition: bool, name: str, what: str) -> None:
        if not condition:
            raise ConfigError(f"{self.section}.{name}: must be {what}, got {getattr(self, name)!r}")

    def _positive(self, *names: str) -> None:
        for name in names:
            self._require(getattr(self, name) > 0, name, "positive")

    def _non_negative(self, *names: str) -> None:
        for name in names:
            self._require(getattr(self, name) >= 0, name, ">= 0")

    def _fraction(self, *names: str) -> None:
        for name in names:
            self._require(0.0 <= getattr(self, name) <= 1.0, name, "in [0, 1]")


# -------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig(_Section):
    section: ClassVar[str] = "data"
    downscale: float = 1.0  # working resolution = native / downscale
    labels: LabelSource = "m2f"  # "gt" (view-consistent rs_*) or "m2f" (raw per-view machine labels)
    # The scene box around the depth points: all but box_tail_percent (%) of them on each side, plus
    # box_margin of the content's extent. The defaults are how runs were normalised before these keys
    # existed; the presets use a 10% margin (a surface next to the box was not formed: rays end on it).
    box_margin: float = 0.02
    box_tail_percent: float = 0.1

    def _check_ranges(self) -> None:
        self._positive("downscale")
        self._require(0.0 <= self.box_margin <= 1.0, "box_margin", "in [0, 1]")
        self._require(0.0 <= self.box_tail_percent < 10.0, "box_tail_percent", "in [0, 10)")


@dataclass(frozen=True)
class FieldConfig(_Section):
    """Geometry, colour and semantic networks (see model/field.py)."""

    section: ClassVar[str] = "field"
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
    object_init: ObjectInit = "background"  # background: s_k = s_0 + offset | sphere: s_k ~ |x| - r_obj (ObjectSDF++)
    object_init_offset: float = 0.05
    weight_norm: bool = True
    softplus_beta: float = 100.0
    beta_init: float = 0.1  # Laplace density scale
    beta_min: float = 1e-4
    semantic_hidden_dim: int = 64
    embedding_dim: int = 3  # contrastive baseline only
    # Object opacities, in the segmentation losses and in rendered channels alike: "share" = each
    # channel's share of the density where the ray terminates (scene weights detached: segmentation
    # decides who owns a surface, not where it is; no reward for density in free space);
    # "occlusion" = ObjectSDF++'s occlusion-aware opacity with gradients through the
    # transmittance, as published.
    object_opacity: OpacityKind = "share"

    def _check_ranges(self) -> None:
        self._require(self.channels >= 2, "channels", "at least 2 (background + one object)")
        self._positive("grid_levels", "grid_features", "grid_base_resolution", "hidden_dim", "hidden_layers", "feature_dim")
        self._positive("color_hidden_dim", "color_hidden_layers", "semantic_hidden_dim", "embedding_dim", "softplus_beta")
        self._positive("init_radius", "beta_init", "beta_min")
        self._non_negative("pe_frequencies", "view_frequencies", "object_init_offset")
        self._require(10 <= self.grid_log2_size <= 26, "grid_log2_size", "in [10, 26]")
        self._require(self.grid_finest_resolution >= self.grid_base_resolution, "grid_finest_resolution", ">= grid_base_resolution")


@dataclass(frozen=True)
class SamplerConfig(_Section):
    """Ray sampling (see model/samplers/). Costs are network evaluations per ray."""

    section: ClassVar[str] = "sampler"
    kind: SamplerKind = "grid"
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
    # spheres: samples per ray inside the union of the sphere intervals (model/samplers/spheres.py).
    sphere_samples: int = 16
    # evaluation: samples for rendering test views.
    eval_fine_samples: int = 8  # test views: 8 + 2 samples score as 12 + 4 did (PQ 0.9338 vs 0.9339), 25% faster
    eval_uniform_samples: int = 2
    # test views walk the cached volume about once per voxel along its longest side: half the training
    # walk, the same scores on the rooms (PQ to 1e-4), 0.45 s less per 320x240 view on 2 cores
    eval_coarse_steps: int = 64

    def _check_ranges(self) -> None:
        self._positive("near", "coarse_steps", "fine_samples", "uniform_samples", "eb_samples_eval", "eb_samples", "eb_eps")
        self._positive("eb_beta_iters", "eb_max_iters", "depth_samples", "depth_sigma", "sphere_samples", "eval_fine_samples")
        self._positive("eval_uniform_samples", "eval_coarse_steps", "grid_update_every")
        self._require(self.grid_resolution >= 2, "grid_resolution", "at least 2")
        self._non_negative("eb_extra")


@dataclass(frozen=True)
class LossConfig(_Section):
    section: ClassVar[str] = "loss"
    rgb: float = 1.0
    depth: float = 1.0  # metric depth L1 in normalised units (ObjectSDF++ uses 0.1 for monocular depth)
    depth_mode: DepthMode = "metric"  # metric | ssi (scale-and-shift invariant, for monocular depth)
    normal_l1: float = 0.0  # normal terms need the SDF gradient at every sample (paper: 0.05 / 0.05)
    normal_cos: float = 0.0
    eikonal: float = 0.1
    smooth: float = 0.005
    eikonal_points: int = 1024  # uniform points in the scene box (+ one near-surface point per ray)
    smooth_epsilon: float = 0.005
    collision: float = 0.5
    collision_start: float = 0.5  # fraction of the run after which the collision term is on
    opacity: float = 1.0  # ObjectSDF++'s segmentation loss on object opacities (mode objectsdf)
    opacity_loss: SegmentationLoss = "bce"  # bce (ObjectSDF++) | nll (cross entropy over channels)
    semantic: float = 0.5  # semantic head, confidence-weighted cross entropy
    vote_decay: float = 0.999  # per-step decay of the channel -> class votes of the training labels

    def _check_ranges(self) -> None:
        self._non_negative("rgb", "depth", "normal_l1", "normal_cos", "eikonal", "smooth", "collision", "opacity", "semantic")
        self._positive("eikonal_points", "smooth_epsilon")
        self._fraction("collision_start", "vote_decay")


@dataclass(frozen=True)
class ClusteringConfig(_Section):
    """ClusteringSDF losses (paper Eq. 3-9; defaults = paper appendix). A term is off at weight 0."""

    section: ClassVar[str] = "clustering"
    diff: float = 20.0  # lambda1
    onehot: float = 0.5  # lambda2
    reg: float = 1e4  # lambda3
    bg: float = 0.2  # lambda4
    fg: float = 0.1  # lambda5
    sem: float = 0.15
    sem_ray: float = 0.0  # semantic mode, our addition (cpu/tiny presets: 0.5): confidence-weighted cross entropy of each ray's channel shares
    cross_view: float = 3.0
    reg_axis: RegAxis = "channels"  # channels (code/appendix) | rays (intra-cluster variance)
    compact: float = 1000.0  # our addition: intra-cluster compactness mean ||P_r - mu_g||^2 (fights fragmentation)
    # our addition (cpu preset: 1.0): penalty on a thing ray's share of object channels voted for another
    # class; separates objects of different classes that no frame shows together
    class_coherence: float = 0.0
    # our addition (cpu preset: 1.0): penalty on two 3D places of one class (sampling/places.py:
    # segments linked over all frames by touching depth boxes) picking the same channel; separates
    # objects of one class that few frames show together. Needs depth (without it: off, with a note)
    separation: float = 0.0
    place_gap: float = 0.01  # normalised units (about 4 cm on the synthetic room): boxes closer are one place
    # our addition: a one-hot target pulling each 3D place's rays to a channel of its own (losses/clustering.py,
    # place_seed_loss), fading linearly to 0 at place_seed_end (fraction of the run); breaks the channels'
    # symmetry so that many channels all take objects. Acts in runs of at least place_seed_channels
    # channels (fewer converge without it). Needs depth (without it: off, with a note)
    place_seed: float = 0.0
    place_seed_end: float = 0.5
    place_seed_channels: int = 33
    # our addition: join one frame's masks whose shared border is depth-continuous (sampling/joins.py),
    # so the parts of an object that an over-segmenting segmenter cut apart train as one mask.
    # auto: on for masks without classes (superpixels, classical, SAM), off for masks with classes
    join_masks: JoinMode = "auto"

    def _check_ranges(self) -> None:
        self._non_negative(
            "diff", "onehot", "reg", "bg", "fg", "sem", "sem_ray", "cross_view", "compact", "class_coherence", "separation", "place_gap",
            "place_seed",
        )
        self._fraction("place_seed_end")
        self._positive("place_seed_channels")


@dataclass(frozen=True)
class BatchConfig(_Section):
    """The rays of a training step (sampling/batches.py): how many, from how many frames, and for
    the label-comprehensive methods (ClusteringSDF, Contrastive Lift) how frames and label rays are chosen."""

    section: ClassVar[str] = "batch"
    rays: int = 1024
    frames_per_batch: int = 4
    keyframe_fraction: float = 0.1  # key frames: this share of the train frames with the most labels
    keyframe_probability: float = 0.2  # chance that a drawn frame is replaced by a key frame
    # our addition: share of each frame's label rays split equally among its labels (0 = the paper's
    # area-proportional quota); small and rarely seen objects then get rays of their own
    label_balance: float = 0.0

    def _check_ranges(self) -> None:
        self._positive("rays", "frames_per_batch")
        self._fraction("keyframe_fraction", "keyframe_probability", "label_balance")


@dataclass(frozen=True)
class SpheresConfig(_Section):
    """Sphere-guided training (sampling/spheres.py, training/spheres.py); lengths in normalised units."""

    section: ClassVar[str] = "spheres"
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

    def _check_ranges(self) -> None:
        self._positive("count", "radius_max", "radius_min", "lr", "resample_every", "attraction_points", "neighbors", "neighbours_every")
        self._require(self.radius_min <= self.radius_max, "radius_min", "<= radius_max")
        self._fraction("radius_end", "warmup", "guided_fraction")
        self._non_negative("repulsion", "repulsion_radius_factor")


@dataclass(frozen=True)
class TrainConfig(_Section):
    section: ClassVar[str] = "train"
    iterations: int = 4000
    # train by a time budget (minutes, 0: by ``iterations``): after the first steps the run length is
    # set from the measured step time and every schedule is stretched to it
    minutes: float = 0.0
    lr: float = 5e-4
    grid_lr_factor: float = 20.0
    lr_final_factor: float = 0.1  # exponential decay to this factor over the run
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    threads: int = 0  # 0 = torch default

    def _check_ranges(self) -> None:
        self._positive("iterations", "lr", "grid_lr_factor", "lr_final_factor", "checkpoint_every", "log_every")
        self._non_negative("threads", "seed", "minutes")


@dataclass(frozen=True)
class InferenceConfig(_Section):
    """Panoptic fusion at render time (changing it needs no retraining)."""

    section: ClassVar[str] = "inference"
    min_segment_fraction: float = 2e-4  # thing segments smaller than this share of all rendered pixels are fragments
    eval_mesh_resolution: int = 256  # `train --eval` meshes the run at this resolution and scores it against a GT mesh (0: not)
    eval_every: int = 1  # `train --eval` renders and scores every k-th view of the test split (large scenes)
    # channels that hold one object between them (inference/mesh.py duplicate_groups) are found on a
    # grid of this resolution and labelled as one object (0: every channel is its own object)
    object_grid: int = 128
    render_chunk: int = 1024  # rays rendered at once (on the CPU the network intermediates of 1024 rays stay in cache: 15% faster than 4096)

    def _check_ranges(self) -> None:
        self._positive("render_chunk")
        self._require(0.0 <= self.min_segment_fraction < 1.0, "min_segment_fraction", "in [0, 1)")
        self._require(self.eval_mesh_resolution == 0 or self.eval_mesh_resolution >= 8, "eval_mesh_resolution", "0 or at least 8")
        self._require(self.eval_every >= 1, "eval_every", "at least 1")
        self._require(self.object_grid == 0 or self.object_grid >= 8, "object_grid", "0 or at least 8")


# Keys earlier versions wrote, read by what they are now (old config.json files and --set still work).
# A moved key is read under its new name.
MOVED_KEYS: dict[str, str] = {
    "train.rays": "batch.rays",
    "train.frames_per_batch": "batch.frames_per_batch",
    "clustering.keyframe_fraction": "batch.keyframe_fraction",
    "clustering.keyframe_probability": "batch.keyframe_probability",
    "clustering.label_balance": "batch.label_balance",
    "train.render_chunk": "inference.render_chunk",
    "loss.segmentation_opacity": "field.object_opacity",
    "loss.opacity_bce": "loss.opacity",
    "loss.segmentation_loss": "loss.opacity_loss",
}
# A switch that was false sets the weights it switched to 0 (a term is off at weight 0); true is dropped.
SWITCHES: dict[str, tuple[str, ...]] = {
    "clustering.use_diff": ("clustering.diff",),
    "clustering.use_onehot": ("clustering.onehot",),
    "clustering.use_reg": ("clustering.reg",),
    "clustering.use_fgbg": ("clustering.bg", "clustering.fg"),
    "clustering.use_crossview": ("clustering.cross_view",),
}
# Keys that never meant anything (they were never read): dropped.
RETIRED_KEYS = frozenset({"clustering.label_rays", "clustering.contrastive_rays", "clustering.cross_view_frames", "clustering.cross_view_rays"})


def current_keys(values: dict[str, Any]) -> dict[str, Any]:
    """``{"section.key": value}`` with the keys of earlier versions replaced by what they are now
    (:data:`MOVED_KEYS`, :data:`SWITCHES`, :data:`RETIRED_KEYS`); a switched-off term's weight is 0
    whatever else the values say."""
    out: dict[str, Any] = {}
    off: list[str] = []
    for key, value in values.items():
        if key in SWITCHES:
            if not _check_value(key, value, bool):
                off += SWITCHES[key]
        elif key not in RETIRED_KEYS:
            out[MOVED_KEYS.get(key, key)] = value
    return {**out, **{key: 0.0 for key in off}}


def read_config_file(path: Path) -> dict[str, Any]:
    """The nested values of a JSON config file: any subset of the sections, or a run's config.json
    (whose ``config`` key holds them). An unreadable file is a one-line :class:`ConfigError`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    return data.get("config", data) if isinstance(data, dict) else data


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "field": FieldConfig,
    "sampler": SamplerConfig,
    "loss": LossConfig,
    "clustering": ClusteringConfig,
    "spheres": SpheresConfig,
    "batch": BatchConfig,
    "train": TrainConfig,
    "inference": InferenceConfig,
}


@dataclass(frozen=True)
class Config:
    preset: str = "cpu"  # the preset it started from (informative)
    mode: str = "panoptic"  # a method name of clusteringsdf.methods.METHODS
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    clustering: ClusteringConfig = dataclasses.field(default_factory=ClusteringConfig)
    spheres: SpheresConfig = dataclasses.field(default_factory=SpheresConfig)
    batch: BatchConfig = dataclasses.field(default_factory=BatchConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)

    def __post_init__(self) -> None:
        for name in ("preset", "mode"):
            _check_value(name, getattr(self, name), str)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: "Config | None" = None) -> "Config":
        """A config from nested values (a config.json); keys it lacks keep ``base``'s (default:
        the dataclass defaults). Unknown keys and bad values raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object of config sections, got {type(data).__name__}")
        flat: dict[str, Any] = {}
        for name, value in data.items():
            if name in _SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{name}: expected a section (an object of keys), got {value!r}")
                flat.update({f"{name}.{key}": item for key, item in value.items()})
            else:
                flat[name] = value
        return (base or cls()).with_values(flat)

    @classmethod
    def load(cls, path: Path, base: "Config | None" = None) -> "Config":
        """A config from a JSON file (:func:`read_config_file`) over ``base``; a bad value is a
        one-line :class:`ConfigError` naming the file and the key."""
        try:
            return cls.from_dict(read_config_file(path), base)
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None

    def with_values(self, values: dict[str, Any]) -> "Config":
        """A new config with ``{"section.key": value, "mode": value}`` replaced (validated); keys
        of earlier versions are read by what they are now (:func:`current_keys`)."""
        top: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {}
        for key, value in current_keys(values).items():
            section, _, name = key.partition(".")
            if name and section in _SECTIONS:
                known = {f.name for f in dataclasses.fields(_SECTIONS[section])}
                if name not in known:
                    raise ConfigError(f"{key}: unknown key (section '{section}' has {', '.join(sorted(known))})")
                sections.setdefault(section, {})[name] = value
            elif not name and key in ("preset", "mode"):
                top[key] = value
            else:
                raise ConfigError(f"{key}: unknown key (sections: {', '.join(_SECTIONS)}; top level: preset, mode)")
        for section, changes in sections.items():
            top[section] = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **top)

    def with_text_values(self, assignments: list[str]) -> "Config":
        """``--set section.key=value`` strings parsed to each field's type, then :meth:`with_values`."""
        values: dict[str, Any] = {}
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"--set {assignment}: expected section.key=value")
            section, _, name = MOVED_KEYS.get(key, key).partition(".")
            if key in SWITCHES:
                values[key] = parse_value(key, text, bool)
            elif section in _SECTIONS and name:
                hints = typing.get_type_hints(_SECTIONS[section])
                values[key] = parse_value(key, text, hints.get(name, str)) if name in hints else text
            else:
                values[key] = text
        return self.with_values(values)


PRESET_DATA = DataConfig(box_margin=0.1, box_tail_percent=0.01)


def _cpu_preset() -> Config:
    """2000 steps at twice the base learning rate, 20 samples per ray and 512 eikonal points: on the
    room PQ 0.90-0.93 and all things meshed in a third of the time of 4000 steps at the base rate
    with 32 samples (PQ 0.94; docs/results.md, "Training speed")."""
    return Config(
        preset="cpu", data=PRESET_DATA,
        sampler=SamplerConfig(fine_samples=16, uniform_samples=4),
        loss=LossConfig(eikonal_points=512),
        clustering=ClusteringConfig(sem_ray=0.5, class_coherence=1.0, separation=1.0, place_seed=1.0),
        batch=BatchConfig(label_balance=0.5),
        train=TrainConfig(iterations=2000, lr=1e-3),
    )


def preset(name: str) -> Config:
    """A named preset: ``tiny`` (tests), ``cpu`` (the default), ``gpu`` (where a GPU user should
    start: a larger network and batch, finer samples, more steps) or ``paper`` (the published
    settings)."""
    if name == "cpu":
        return _cpu_preset()
    if name == "tiny":
        return Config(
            preset="tiny",
            data=PRESET_DATA,
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
                eval_fine_samples=16, eval_uniform_samples=8, eval_coarse_steps=48,
            ),
            loss=LossConfig(eikonal_points=128),
            clustering=ClusteringConfig(sem_ray=0.5),
            spheres=SpheresConfig(count=256, resample_every=20, attraction_points=128),
            batch=BatchConfig(rays=128, frames_per_batch=2),
            train=TrainConfig(iterations=60, checkpoint_every=20, log_every=10),
            inference=InferenceConfig(eval_mesh_resolution=32, render_chunk=2048),
        )
    if name == "gpu":
        return Config(
            preset="gpu",
            data=PRESET_DATA,
            field=FieldConfig(
                channels=64,
                grid_levels=16,
                grid_log2_size=19,
                grid_finest_resolution=2048,
                hidden_dim=128,
                feature_dim=64,
                color_hidden_dim=128,
                semantic_hidden_dim=128,
            ),
            sampler=SamplerConfig(
                grid_resolution=128, grid_update_every=200, coarse_steps=256, fine_samples=48, uniform_samples=16,
                eval_fine_samples=24, eval_uniform_samples=8, eval_coarse_steps=128,
            ),
            loss=LossConfig(eikonal_points=4096),
            clustering=ClusteringConfig(sem_ray=0.5),
            batch=BatchConfig(rays=4096, frames_per_batch=8),
            train=TrainConfig(iterations=20_000, checkpoint_every=2000, log_every=100),
            inference=InferenceConfig(render_chunk=65_536),
        )
    if name == "paper":
        return Config(
            preset="paper",
            data=PRESET_DATA,
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
            batch=BatchConfig(rays=1024, frames_per_batch=1),
            train=TrainConfig(iterations=120_000, checkpoint_every=5000, log_every=100),
        )
    raise ConfigError(f"preset: '{name}' is not one of {', '.join(PRESETS)}")
