"""Orchestration of a synthetic scene: layout, camera path, verification, rendering, labels, writing.

:func:`generate_scene` writes a complete scene folder in the Panoptic Lifting layout (plus
``gt_mesh.ply`` and ``synthetic_info.json``). The output is byte-identical for a given
(preset, seed, noise, masks). Random streams are derived from the seed as
``np.random.default_rng([seed, stream, ...])``; global random state is never used.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..classes import NUM_CLASSES, REDUCED_SCANNET_CLASSES, STUFF_CLASSES, THING_CLASSES
from .. import layout
from ..mesh_io import write_mesh
from .camera_path import CameraPathConfig, camera_path, plan_doorway_loop, plan_loop
from .geometry import Cylinder, RayCaster, RayGrid, index_groups
from .machine_labels import NOISE_LEVELS, FrameLabels, IdCounters, NoiseParams, synthesize_frame
from .mask_kinds import MASK_KINDS, AgnosticLabeller, agnostic_segmentation_data, mask_parameters
from .room import Room, RoomConfig, build_room
from .two_rooms import build_two_rooms
from .shading import albedo

GENERATOR_VERSION = "1.0.0"
MAX_LAYOUT_ATTEMPTS = 16
# frames are rendered in worker processes when a scene has at least this many pixels in all (``large``)
PARALLEL_MIN_PIXELS = 20_000_000
MAX_WORKERS = 2

# random stream ids (second entry of the seed list); each kind of machine labels has its own
_STREAM_LAYOUT, _STREAM_CAMERA, _STREAM_LABELS = 1, 2, 3
_STREAM_MASKS = {"m2f": _STREAM_LABELS, "sam": 4, "fragments": 5}


@dataclass(frozen=True)
class Preset:
    """Image size, frame count, field of view, room ranges and camera settings of a preset."""

    name: str
    width: int
    height: int
    num_frames: int
    hfov_deg: float
    room: RoomConfig
    camera: CameraPathConfig
    min_pair_frames: int  # frames in which each object of the never-co-visible pair must appear
    verify_step: int = 1  # pixel stride of the layout check's visibility maps (the written frames are exact)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny", 64, 48, 12, 65.0,
        RoomConfig(size_x=(3.4, 3.8), size_y=(3.0, 3.4), height=(2.45, 2.55), full=False),
        CameraPathConfig(clearance=0.7, min_clearance=0.45, min_radius=0.2), 1,
    ),
    "room": Preset(
        "room", 320, 240, 100, 65.0,
        RoomConfig(size_x=(5.0, 6.0), size_y=(4.6, 5.6), height=(2.6, 2.8), full=True),
        CameraPathConfig(), 3,
    ),
    "large": Preset(
        "large", 640, 480, 300, 65.0,
        RoomConfig(size_x=(12.5, 13.5), size_y=(7.8, 8.4), height=(2.7, 2.9), full=True, two_rooms=True),
        CameraPathConfig(clearance=0.9, min_radius=2.0), 3, verify_step=4,
    ),
}


@dataclass(frozen=True)
class SyntheticObject:
    """One object of a synthetic scene as listed in ``synthetic_info.json``."""

    object_id: int
    name: str
    class_id: int
    class_name: str
    instance_id: int  # GT instance id (1..K) for things, 0 otherwise
    is_thing: bool
    visible_frames: int


@dataclass
class SyntheticSceneInfo:
    """What :func:`generate_scene` produced.

    ``never_covisible_pair`` holds the GT instance ids of two THING objects of different classes that
    never appear in the same frame's ``rs_instance`` map; ``timings`` are seconds per stage.
    """

    out_dir: Path
    preset: str
    seed: int
    noise: str
    num_frames: int
    width: int
    height: int
    room_size: tuple[float, float, float]
    objects: list[SyntheticObject]
    never_covisible_pair: tuple[int, int]
    never_covisible_names: tuple[str, str]
    layout_attempts: int
    timings: dict[str, float] = field(default_factory=dict)
    masks: str = "m2f"

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the images."""
        return self.width, self.height

    @property
    def num_things(self) -> int:
        return sum(o.is_thing for o in self.objects)


# ----------------------------------------------------------------------------------- rendering


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K with fx = fy = W / (2 tan(hfov / 2)) and the principal point at the image centre."""
    f = width / (2.0 * np.tan(np.deg2rad(hfov_deg) / 2.0))
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


class SceneRenderer:
    """Renders colour (2x2 supersampled), z-depth, camera-frame normals and object-index maps.

    Depth, normals and labels come from the ray through each pixel centre. Colour averages 4 samples
    at offsets (+-1/4, +-1/4) pixel. The samples are cast exactly where the pixel or one of its 8
    neighbours differs in primitive or normal (edges), on cylinders and at grazing angles; elsewhere
    the pixel is interior to one planar face and its samples are the exact intersections of their
    rays with the plane of the centre hit.
    """

    _OFFSETS = np.array([(-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)])

    def __init__(self, room: Room, k: np.ndarray, width: int, height: int) -> None:
        shapes, owners, materials = room.primitives()
        self.room = room
        self.caster = RayCaster(room.shell, shapes)
        self.primitive_object = np.array([*room.shell_objects, *owners], dtype=np.int64)
        self.primitive_material = [*room.shell_materials, *materials]
        self.curved = np.array([False] * 6 + [isinstance(p, Cylinder) for p in shapes])
        self.k, self.width, self.height = k, width, height
        self.us, self.vs = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)

    def object_map(self, pose: np.ndarray, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Object index and z-depth of the pixel-centre rays of every ``step``-th row and column,
        (ceil(H / step), ceil(W / step)) each."""
        hits = self.caster.cast(RayGrid(self.us[::step], self.vs[::step], pose, self.k), surface=False)
        return self.primitive_object[hits.primitive], hits.t

    def _samples(self, pose: np.ndarray, centre) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points, normals and primitives of the 4 colour samples per pixel, (H, W, 4, ...)."""
        height, width = self.height, self.width
        prim, normals, points = centre.primitive, centre.normals, centre.points
        edge = self.curved[prim].copy()
        padded_prim = np.pad(prim, 1, mode="edge")
        padded_normals = np.pad(normals, ((1, 1), (1, 1), (0, 0)), mode="edge")
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                edge |= padded_prim[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] != prim
                other = padded_normals[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
                edge |= np.sum(other * normals, axis=-1) < 0.9999
        k, rotation, origin = self.k, pose[:3, :3], pose[:3, 3]
        su = self.us[None, :, None] + self._OFFSETS[:, 0]  # (1, W, 4)
        sv = self.vs[:, None, None] + self._OFFSETS[:, 1]  # (H, 1, 4)
        d_cam = np.empty((height, width, 4, 3))
        d_cam[..., 0] = (su - k[0, 2]) / k[0, 0]
        d_cam[..., 1] = (sv - k[1, 2]) / k[1, 1]
        d_cam[..., 2] = 1.0
        dirs = d_cam @ rotation.T
        numerator = np.sum(normals * (points - origin), axis=-1)  # n . (p - o)
        denominator = np.sum(normals[:, :, None, :] * dirs, axis=-1)  # n . d
        edge |= np.any(denominator > -1e-3, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = numerator[..., None] / denominator
        sample_points = origin + dirs * t[..., None]
        sample_normals = np.broadcast_to(normals[:, :, None, :], (height, width, 4, 3)).copy()
        sample_prim = np.broadcast_to(prim[:, :, None], (height, width, 4)).copy()
        ej, ei = np.nonzero(edge)
        if len(ej):
            u = (ei[:, None] + self._OFFSETS[None, :, 0]).reshape(-1)
            v = (ej[:, None] + self._OFFSETS[None, :, 1]).reshape(-1)
            exact = self.caster.cast_pixels(pose, k, u, v)
            sample_points[ej, ei] = exact.points.reshape(-1, 4, 3)
            sample_normals[ej, ei] = exact.normals.reshape(-1, 4, 3)
            sample_prim[ej, ei] = exact.primitive.reshape(-1, 4)
        return sample_points, sample_normals, sample_prim

    def render(self, pose: np.ndarray) -> dict[str, np.ndarray]:
        """``color`` uint8 (H, W, 3), ``depth`` (H, W) metres, ``normal`` (H, W, 3) camera frame,
        ``object`` (H, W) object index, all but colour from the pixel-centre ray."""
        centre = self.caster.cast(RayGrid(self.us, self.vs, pose, self.k))
        sample_points, sample_normals, sample_prim = self._samples(pose, centre)
        points = sample_points.reshape(-1, 3)
        flat_prim = sample_prim.reshape(-1)
        rgb = np.empty_like(points)
        for group in index_groups(flat_prim):
            prim = int(flat_prim[group[0]])
            obj = self.room.objects[self.primitive_object[prim]]
            local = (points[group] - obj.frame_origin) @ obj.frame_rotation
            rgb[group] = albedo(self.primitive_material[prim], local)
        rgb *= self.room.lighting.irradiance(points, sample_normals.reshape(-1, 3))[:, None]
        rgb = rgb.reshape(self.height, self.width, 4, 3).mean(axis=2)
        color = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
        normal_cam = centre.normals @ pose[:3, :3]
        return {"color": color, "depth": centre.t, "normal": normal_cam, "object": self.primitive_object[centre.primitive]}


class _FrameWriter:
    """Renders one frame and writes its colour, depth, normals, pose and ground-truth label maps.

    ``size`` is the image (width, height). Called with a frame name and its pose (4, 4); returns the
    object-index map (H, W) and the seconds spent rendering and writing. The machine labels are made
    from the object map by the caller, in frame order (their ids come from running counters)."""

    def __init__(self, room: Room, k: np.ndarray, size: tuple[int, int], out_dir: Path) -> None:
        self.renderer = SceneRenderer(room, k, *size)
        self.class_of = np.array([o.class_id for o in room.objects], dtype=np.int64)
        self.instance_of = np.array([o.instance_id for o in room.objects], dtype=np.int64)
        self.out_dir = out_dir

    def __call__(self, name: str, pose: np.ndarray) -> tuple[np.ndarray, float, float]:
        t0 = time.perf_counter()
        frame = self.renderer.render(pose)
        t1 = time.perf_counter()
        out, objects = self.out_dir, frame["object"]
        layout.write_color(out / "color" / f"{name}.png", frame["color"])
        layout.write_depth(out / "depth" / f"{name}.png", frame["depth"])
        layout.write_normal(out / "normal" / f"{name}.png", frame["normal"])
        layout.write_matrix(out / "pose" / f"{name}.txt", pose)
        layout.write_label(out / "rs_semantics" / f"{name}.png", self.class_of[objects])
        layout.write_label(out / "rs_instance" / f"{name}.png", self.instance_of[objects])
        return objects, t1 - t0, time.perf_counter() - t1


_worker_writer: _FrameWriter | None = None


def _start_worker(*writer_args) -> None:
    """Worker-process initialiser: one BLAS thread (as in :func:`generate_scene`) and a frame writer."""
    global _worker_writer
    threadpool_limits(1)
    _worker_writer = _FrameWriter(*writer_args)


def _worker_frame(name: str, pose: np.ndarray) -> tuple[np.ndarray, float, float]:
    assert _worker_writer is not None
    return _worker_writer(name, pose)


def _rendered_frames(writer_args: tuple, names: list[str], poses: np.ndarray, workers: int) -> Iterator[tuple[np.ndarray, float, float]]:
    """What :class:`_FrameWriter` returns for each frame, in frame order. With ``workers`` > 1 the
    frames are rendered in that many processes, at most two per process ahead of the caller."""
    if workers <= 1:
        writer = _FrameWriter(*writer_args)
        for name, pose in zip(names, poses):
            yield writer(name, pose)
        return
    context = multiprocessing.get_context("spawn")  # safe whatever threads the caller runs
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=writer_args) as pool:
        pending: deque[Future] = deque()
        submitted = 0
        for _ in names:
            while submitted < len(names) and len(pending) < 2 * workers:
                pending.append(pool.submit(_worker_frame, names[submitted], poses[submitted]))
                submitted += 1
            yield pending.popleft().result()


# ----------------------------------------------------------------------------------- scene mesh


def scene_mesh(room: Room) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """World-space triangle mesh of the room: vertices, faces and per-face instance/semantic/object."""
    vertices, faces, instance, semantic, objects = [], [], [], [], []
    offset = 0

    def add(v: np.ndarray, f: np.ndarray, obj_index: int) -> None:
        nonlocal offset
        obj = room.objects[obj_index]
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
        instance.append(np.full(len(f), obj.instance_id))
        semantic.append(np.full(len(f), obj.class_id))
        objects.append(np.full(len(f), obj.object_id))

    for face, obj_index in enumerate(room.shell_objects):
        add(*room.shell.face_triangles(face), obj_index)
    for obj_index, obj in enumerate(room.objects):
        for part in obj.parts:
            add(*part.shape.triangles(), obj_index)
    props = {
        "instance": np.concatenate(instance),
        "semantic": np.concatenate(semantic),
        "object": np.concatenate(objects),
    }
    return np.concatenate(vertices), np.concatenate(faces), props


# ----------------------------------------------------------------------------------- verification


@dataclass
class _Plan:
    room: Room
    poses: np.ndarray
    pair: tuple[int, int]  # object indices
    visible: np.ndarray  # (F, num_objects) bool
    attempts: int


def _choose_pair(room: Room, visible: np.ndarray, min_frames: int) -> tuple[int, int] | None:
    """Two thing objects of different classes never visible together, each in >= min_frames frames.

    The room's preferred pair is taken when it qualifies; otherwise the qualifying pair whose rarer
    member is seen most often (ties: smallest indices)."""
    counts = visible.sum(axis=0)
    together = visible.T.astype(np.int64) @ visible.astype(np.int64)

    def ok(a: int, b: int) -> bool:
        oa, ob = room.objects[a], room.objects[b]
        return oa.class_id != ob.class_id and together[a, b] == 0 and counts[a] >= min_frames and counts[b] >= min_frames

    if ok(*room.preferred_pair):
        return room.preferred_pair
    things = [i for i, o in enumerate(room.objects) if o.is_thing]
    best: tuple[int, int] | None = None
    best_score = -1
    for ia, a in enumerate(things):
        for b in things[ia + 1 :]:
            if ok(a, b) and min(counts[a], counts[b]) > best_score:
                best, best_score = (a, b), int(min(counts[a], counts[b]))
    return best


def _plan_scene(preset: Preset, seed: int, k: np.ndarray) -> _Plan:
    """Layout + camera path whose renders satisfy every requirement; deterministic re-draws otherwise."""
    problems = []
    for attempt in range(MAX_LAYOUT_ATTEMPTS):
        rng = np.random.default_rng([seed, _STREAM_LAYOUT, attempt])
        try:
            room = (build_two_rooms if preset.room.two_rooms else build_room)(preset.room, rng)
            loop = (plan_doorway_loop if room.doorways else plan_loop)(room, rng, preset.camera)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        poses = camera_path(loop, preset.num_frames, np.random.default_rng([seed, _STREAM_CAMERA, attempt]), preset.camera)
        renderer = SceneRenderer(room, k, preset.width, preset.height)
        clearance = renderer.caster.signed_distance(poses[:, :3, 3])
        if np.min(clearance) < 0.3:
            problems.append(f"a camera is {np.min(clearance):.2f} m from a surface")
            continue
        visible = np.zeros((preset.num_frames, len(room.objects)), dtype=bool)
        min_depth = np.inf
        for f in range(preset.num_frames):
            objects, depth = renderer.object_map(poses[f], preset.verify_step)
            visible[f, np.unique(objects)] = True
            min_depth = min(min_depth, float(depth.min()))
        if min_depth < 0.25:
            problems.append(f"a surface is {min_depth:.2f} m in front of a camera")
            continue
        unseen = [o.name for i, o in enumerate(room.objects) if (o.is_thing or o.class_id == 0) and not visible[:, i].any()]
        if unseen:
            problems.append(f"never visible: {', '.join(unseen)}")
            continue
        pair = _choose_pair(room, visible, preset.min_pair_frames)
        if pair is None:
            problems.append("no pair of thing objects of different classes is never co-visible")
            continue
        return _Plan(room, poses, pair, visible, attempt + 1)
    raise RuntimeError(f"could not lay out a valid '{preset.name}' scene for seed {seed}: " + "; ".join(problems[-3:]))


# ----------------------------------------------------------------------------------- main entry


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"{out_dir}: exists and is not a folder")
        if any(out_dir.iterdir()):
            raise ValueError(f"{out_dir}: folder exists and is not empty; refusing to overwrite it (choose a new or empty folder)")


def _check_arguments(preset: str, seed: int, noise: str, masks: str) -> None:
    """ValueError for an unknown preset, noise level or mask kind or a seed that is not a non-negative integer."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset '{preset}' (expected one of: {', '.join(PRESETS)})")
    if noise not in NOISE_LEVELS:
        raise ValueError(f"unknown noise level '{noise}' (expected one of: {', '.join(NOISE_LEVELS)})")
    if masks not in MASK_KINDS:
        raise ValueError(f"unknown kind of masks '{masks}' (expected one of: {', '.join(MASK_KINDS)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _segment_keys(room: Room) -> tuple[np.ndarray, np.ndarray]:
    """Per object: key of its GT panoptic segment (things and void: own key; stuff: one key per class)
    and the class of each key."""
    keys, key_class = [], []
    by_class: dict[int, int] = {}
    for obj in room.objects:
        if obj.is_thing or obj.class_id == 0:
            keys.append(len(key_class))
            key_class.append(obj.class_id)
        else:
            if obj.class_id not in by_class:
                by_class[obj.class_id] = len(key_class)
                key_class.append(obj.class_id)
            keys.append(by_class[obj.class_id])
    return np.array(keys, dtype=np.int64), np.array(key_class, dtype=np.int64)


def _local_segments(keys: np.ndarray, key_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frame's GT panoptic segments numbered 1..S (H, W) from its per-pixel segment keys (H, W),
    and the class of each local id (S + 1,) with 0 for id 0."""
    present, local = np.unique(keys, return_inverse=True)
    local = local.reshape(keys.shape) + 1
    return local, np.concatenate([[0], key_class[present]])


@dataclass
class _Progress:
    """Progress lines on stderr (when ``enabled``) stamped with the seconds since ``start``."""

    enabled: bool
    start: float

    def log(self, message: str) -> None:
        if self.enabled:
            print(f"[synth {time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class _SceneRun:
    """One :func:`generate_scene` call: the output folder, preset, seed, noise level and its
    parameters, intrinsics (3, 3), the verified plan, the names of the frames written, progress,
    the seconds per stage and the kind of machine labels."""

    out_dir: Path
    cfg: Preset
    seed: int
    noise: str
    params: NoiseParams
    k: np.ndarray
    plan: _Plan
    names: list[str]
    progress: _Progress
    timings: dict[str, float]
    masks: str = "m2f"


@dataclass
class _LabelSummary:
    """What the written frames add up to: object visibility (F, num_objects) bool, the classes of
    the machine instance ids and the noise statistics summed over the frames."""

    visible: np.ndarray
    instance_to_semantic: dict[int, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def add(self, labels: FrameLabels) -> None:
        self.instance_to_semantic.update(labels.instance_to_semantic)
        for key, value in labels.stats.items():
            self.stats[key] = self.stats.get(key, 0) + value


def _worker_count(workers: int | None, num_frames: int, cfg: Preset) -> int:
    """``workers`` or, when None, one for small scenes and up to ``MAX_WORKERS`` for large ones."""
    if workers is not None:
        return workers
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if num_frames * cfg.width * cfg.height < PARALLEL_MIN_PIXELS else min(MAX_WORKERS, available)


def _write_machine_labels(out_dir: Path, name: str, labels: FrameLabels) -> None:
    """The ``m2f_*`` files of one frame."""
    layout.write_label(out_dir / "m2f_semantics" / f"{name}.png", labels.semantics)
    layout.write_label(out_dir / "m2f_instance" / f"{name}.png", labels.instance)
    layout.write_label(out_dir / "m2f_segments" / f"{name}.png", labels.segments)
    layout.write_probabilities(out_dir / "m2f_probabilities" / f"{name}.npz", labels.probability, labels.confidence)


def _log_frame(run: _SceneRun, done: int, now: float) -> None:
    """A progress line after every tenth of the frames, with the time left."""
    total = len(run.names)
    if run.progress.enabled and (done % max(1, total // 10) == 0 or done == total):
        per_frame = (now - run.progress.start - run.timings["layout_and_verification"]) / done
        run.progress.log(f"frame {done}/{total} (eta {per_frame * (total - done):.0f}s)")


def _labeller(run: _SceneRun) -> Callable[[int, str, np.ndarray], FrameLabels]:
    """The machine labels of frame ``f`` (called in frame order with its name and object map)."""
    def frame_rng(f: int) -> np.random.Generator:
        return np.random.default_rng([run.seed, _STREAM_MASKS[run.masks], f])

    room = run.plan.room
    if run.masks != "m2f":
        return AgnosticLabeller(run.masks, room, run.k, run.plan.poses, out_dir=run.out_dir, noise=run.noise, frame_rng=frame_rng)
    segment_key, key_class = _segment_keys(room)
    counters = IdCounters()

    def m2f(f: int, name: str, objects: np.ndarray) -> FrameLabels:
        local, seg_class = _local_segments(segment_key[objects], key_class)
        return synthesize_frame(local, seg_class, run.params, frame_rng(f), counters=counters)

    return m2f


def _write_frames(run: _SceneRun, workers: int) -> _LabelSummary:
    """Render and write every frame and its machine labels, in frame order (the labels' ids come
    from running counters); adds the render, label and write seconds to ``run.timings``."""
    room, cfg, names = run.plan.room, run.cfg, run.names
    labeller = _labeller(run)
    summary = _LabelSummary(np.zeros((len(names), len(room.objects)), dtype=bool))
    t_render = t_labels = t_write = 0.0
    frames = _rendered_frames((room, run.k, (cfg.width, cfg.height), run.out_dir), names, run.plan.poses[: len(names)], workers)
    for f, (name, (objects, seconds_render, seconds_write)) in enumerate(zip(names, frames)):
        t1 = time.perf_counter()
        summary.visible[f, np.unique(objects)] = True
        labels = labeller(f, name, objects)
        summary.add(labels)
        t2 = time.perf_counter()
        _write_machine_labels(run.out_dir, name, labels)
        t3 = time.perf_counter()
        t_render += seconds_render
        t_labels += t2 - t1
        t_write += seconds_write + t3 - t2
        _log_frame(run, f + 1, t3)
    run.timings["render"], run.timings["machine_labels"], run.timings["write_frames"] = t_render, t_labels, t_write
    return summary


def _write_scene_files(run: _SceneRun, m2f_instance_to_semantic: dict[int, int]) -> None:
    """Intrinsics, splits (every 4th frame is a test frame), segmentation data (class-agnostic
    for the ``sam`` and ``fragments`` masks) and the GT mesh."""
    out_dir, names, room = run.out_dir, run.names, run.plan.room
    layout.write_intrinsics(out_dir / layout.INTRINSICS_FILE, run.k)
    layout.write_splits(out_dir / layout.SPLITS_FILE, {"train": [n for i, n in enumerate(names) if i % 4 != 0], "test": names[::4]})
    things = [o for o in room.objects if o.is_thing]
    if run.masks == "m2f":
        data = {
            "num_semantic_classes": NUM_CLASSES,
            "fg_classes": list(THING_CLASSES),
            "bg_classes": list(STUFF_CLASSES),
            "rs_instance_to_semantic": {o.instance_id: o.class_id for o in things},
            "m2f_instance_to_semantic": m2f_instance_to_semantic,
            "class_names": dict(REDUCED_SCANNET_CLASSES),
        }
    else:
        data = agnostic_segmentation_data(room)
    layout.write_segmentation_data(out_dir / layout.SEGMENTATION_FILE, data)
    vertices, faces, props = scene_mesh(room)
    write_mesh(out_dir / layout.GT_MESH_FILE, vertices, faces, face_attributes=props)  # world metres, +z up


def _scene_objects(run: _SceneRun, visible: np.ndarray) -> tuple[list[SyntheticObject], tuple[int, int]]:
    """The objects with their visible-frame counts and the never-co-visible pair (object indices).

    From the written frames' exact visibility (the layout check may have used a pixel stride); a
    preview of the first frames keeps the planned pair and visibility of the whole path."""
    room, plan = run.plan.room, run.plan
    complete = len(run.names) == run.cfg.num_frames
    pair = _choose_pair(room, visible, run.cfg.min_pair_frames) if complete else plan.pair
    if pair is None:
        raise RuntimeError(f"'{run.cfg.name}' scene for seed {run.seed}: no never-co-visible pair of things in the rendered frames")
    counts = (visible if complete else plan.visible).sum(axis=0)
    objects_info = [
        SyntheticObject(o.object_id, o.name, o.class_id, o.class_name, o.instance_id, o.is_thing, int(counts[i]))
        for i, o in enumerate(room.objects)
    ]
    return objects_info, pair


def _info_json(run: _SceneRun, objects_info: list[SyntheticObject], pair: tuple[int, int], stats: dict[str, int]) -> dict:
    """The content of ``synthetic_info.json``."""
    cfg, room = run.cfg, run.plan.room
    pair_objects = (room.objects[pair[0]], room.objects[pair[1]])
    return {
        "generator": "clusteringsdf.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "preset": cfg.name,
        "seed": run.seed,
        "noise": run.noise,
        **({} if run.masks == "m2f" else {"masks": run.masks}),
        "noise_params": asdict(run.params) if run.masks == "m2f" else mask_parameters(run.masks, run.noise),
        "num_frames": len(run.names),
        "width": cfg.width,
        "height": cfg.height,
        "hfov_deg": cfg.hfov_deg,
        "world_frame": "metres, +z up, floor at z=0, room centred on x=y=0; poses camera-to-world, OpenCV axes",
        "room_size": [round(float(v), 6) for v in room.size],
        "layout_attempts": run.plan.attempts,
        "objects": [asdict(o) for o in objects_info],
        "never_covisible_pair": {
            "instance_ids": [o.instance_id for o in pair_objects],
            "object_ids": [o.object_id for o in pair_objects],
            "names": [o.name for o in pair_objects],
            "class_ids": [o.class_id for o in pair_objects],
            "visible_frames": [objects_info[pair[0]].visible_frames, objects_info[pair[1]].visible_frames],
        },
        "machine_label_stats": stats,
        "splits": "test = every 4th frame from index 0, train = the rest",
    }


@threadpool_limits.wrap(limits=1)  # BLAS threads make the many small matrix products 2x slower (measured)
def generate_scene(
    out_dir: Path,
    preset: str = "room",
    seed: int = 0,
    noise: str = "medium",
    *,
    masks: str = "m2f",
    progress: bool = False,
    workers: int | None = None,
    max_frames: int | None = None,
) -> SyntheticSceneInfo:
    """Generate a synthetic indoor scene with GT and machine labels into ``out_dir``.

    Args:
        out_dir: output folder; created if missing; must be empty if it exists.
        preset: ``"tiny"`` (64x48, 12 frames, for tests), ``"room"`` (320x240, 100 frames) or
            ``"large"`` (640x480, 300 frames, two connected rooms with 40+ things).
        seed: non-negative integer; the output is byte-identical for the same (preset, seed, noise, masks).
        noise: machine-label noise level, ``"low"``, ``"medium"`` or ``"high"`` (see
            :mod:`clusteringsdf.data.synthetic.machine_labels` and, for ``sam``, :mod:`.sam_masks`).
        masks: the kind of machine labels (:mod:`.mask_kinds`): ``"m2f"`` (Mask2Former-like, with
            classes), ``"sam"`` (class-agnostic masks at several granularities, like SAM's automatic
            masks) or ``"fragments"`` (class-agnostic colour-and-depth superpixels). The class-agnostic
            kinds write the class-agnostic ``segmentation_data.pkl``; the ground truth is the same for all.
        progress: print progress lines to stderr.
        workers: processes that render and write frames (the output does not depend on it); None =
            one for small scenes, up to ``MAX_WORKERS`` for large ones.
        max_frames: write only the first ``max_frames`` frames of the scene (previews and tests); the
            layout and camera path are the full scene's, and so are the object visibility counts and
            the never-co-visible pair in ``synthetic_info.json``.

    Raises:
        ValueError: unknown preset, noise level or mask kind, negative seed, or ``out_dir`` exists and is not empty.
    """
    _check_arguments(preset, seed, noise, masks)
    seed = int(seed)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    cfg = PRESETS[preset]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    report = _Progress(progress, start)
    k = intrinsics(cfg.width, cfg.height, cfg.hfov_deg)
    plan = _plan_scene(cfg, seed, k)
    timings["layout_and_verification"] = time.perf_counter() - start
    room = plan.room
    report.log(f"layout ok after {plan.attempts} attempt(s): {len(room.objects)} objects, pair {room.objects[plan.pair[0]].name} / {room.objects[plan.pair[1]].name}")

    out_dir.mkdir(parents=True, exist_ok=True)
    num_frames = cfg.num_frames if max_frames is None else max(1, min(int(max_frames), cfg.num_frames))
    names = [f"{i:04d}" for i in range(num_frames)]
    run = _SceneRun(out_dir, cfg, seed, noise, NOISE_LEVELS[noise], k, plan, names, report, timings, masks)
    labels = _write_frames(run, _worker_count(workers, num_frames, cfg))

    t0 = time.perf_counter()
    _write_scene_files(run, labels.instance_to_semantic)
    objects_info, (a, b) = _scene_objects(run, labels.visible)
    info_json = _info_json(run, objects_info, (a, b), labels.stats)
    (out_dir / "synthetic_info.json").write_text(json.dumps(info_json, indent=1) + "\n")
    timings["write_scene_files"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    report.log(f"done in {timings['total']:.1f}s -> {out_dir}")
    return SyntheticSceneInfo(
        out_dir=out_dir,
        preset=preset,
        seed=seed,
        noise=noise,
        num_frames=num_frames,
        width=cfg.width,
        height=cfg.height,
        room_size=tuple(float(v) for v in room.size),  # type: ignore[arg-type]
        objects=objects_info,
        never_covisible_pair=(room.objects[a].instance_id, room.objects[b].instance_id),
        never_covisible_names=(room.objects[a].name, room.objects[b].name),
        layout_attempts=plan.attempts,
        timings=timings,
        masks=masks,
    )
