"""What the viewer needs from a run, as plain arrays: the viewer's only door into the model,
inference and data code (so that a change of those internals touches this file alone).

Interface (world metres everywhere; poses are camera-to-world, OpenCV axes: x right, y down,
z forward)::

    access = open_run(run_dir, device="auto", mesh_resolution=128)   # RunError/DataError: one line
    access.name, access.summary, access.up (3,), access.bounds (2, 3)
    access.objects()            -> list[ObjectInfo]   id, class, bounding box, F-score when scored
    access.cameras()            -> list[CameraInfo]   train and test cameras with thumbnails
    access.meshes(colouring)    -> Meshes             background + one mesh per object, coloured
    access.render(pose, K, hw)  -> {"colour", "depth", "labels"}: uint8 (H, W, 3) pictures
    access.report_strip(frame)  -> uint8 picture: input | machine labels | ours | ground truth
    access.can_score_meshes, access.score_meshes()    per-object F-scores against gt_mesh.ply
    access.close()

Meshes come from ``RUN/meshes`` (written by ``clusteringsdf mesh``); when the run has none they
are extracted first at ``mesh_resolution``. The background is the part of the scene mesh that no
listed object owns (the owner of a vertex is the arg-min SDF channel there), so that the objects
can be shown, hidden and clicked on their own. Colourings (:data:`COLOURINGS`):

* ``instance``: one colour per object channel (the palette of the report and the mesh files),
  light grey for the background channel 0;
* ``class``: the object's class; background vertices take the best stuff class of the semantic
  head (as background pixels do in the rendered label maps);
* ``field``: the colour network evaluated at each vertex, looking at it along minus its normal.

Per-object F-scores are read from ``RUN/meshes/geometry.json``, the output of
``clusteringsdf eval --scene SCENE --mesh RUN/meshes --json RUN/meshes/geometry.json`` (or of
:meth:`RunAccess.score_meshes`).

Thread safety: every method that runs the model holds one lock, so viewer callbacks may call
them from several threads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import layout
from ..data.mesh_io import read_mesh_arrays
from ..errors import RunError
from ..files import write_json_atomic
from ..runs import TrainedRun, load_trained_run, resolve_device
from ..inference.mesh import ensure_meshes, field_colors
from ..inference.mesh_rules import Surface
from ..inference.point_labels import owner_channels, stuff_classes_at
from ..inference.palette import class_color, instance_color
from ..inference.visualize import color_image, depth_image

COLOURINGS = ("instance", "class", "field")
GEOMETRY_SCORES_FILE = "geometry.json"
BACKGROUND_GREY = 190  # channel 0 (walls, floor, ... not split into objects) in the instance colouring
_CHUNK = 16_384  # points per forward pass when evaluating the field at mesh vertices


@dataclass(frozen=True)
class ObjectInfo:
    """One object channel with a mesh: bounding box (3,) corners in metres, F-score or None."""

    id: int
    class_id: int
    class_name: str
    thing: bool
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    fscore: float | None = None

    @property
    def size(self) -> np.ndarray:
        """(3,) extent of the bounding box in metres."""
        return self.bbox_max - self.bbox_min


@dataclass(frozen=True)
class CameraInfo:
    """One input camera: ``pose_world`` (4, 4), ``intrinsics`` (3, 3) at ``hw`` = (H, W),
    ``thumbnail`` (h, w, 3) uint8 of its input image."""

    frame: str
    split: str
    pose_world: np.ndarray
    intrinsics: np.ndarray
    hw: tuple[int, int]
    thumbnail: np.ndarray

    @property
    def vertical_fov(self) -> float:
        """Vertical field of view in radians."""
        return 2.0 * math.atan2(self.hw[0] / 2.0, float(self.intrinsics[1, 1]))

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.hw[1] / self.hw[0]


@dataclass(frozen=True)
class MeshData:
    """A triangle mesh: vertices (V, 3) float32 metres, faces (F, 3) int32, colours (V, 3) uint8."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray


@dataclass(frozen=True)
class Meshes:
    """The scene split into a background (None when every face belongs to an object) and one
    mesh per object id."""

    background: MeshData | None
    objects: dict[int, MeshData]


def pinhole_intrinsics(vertical_fov: float, hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) K of a camera with square pixels, the principal point at the image centre and
    integer pixel coordinates at pixel centres."""
    height, width = hw
    focal = (height / 2.0) / math.tan(vertical_fov / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def open_run(
    run_dir: str | Path, device: str = "auto", mesh_resolution: int = 128, log: Callable[[str], None] = print, *, scene_path: Path | None = None
) -> "RunAccess":
    """Load a trained run (latest checkpoint) and its meshes, extracting them when missing.

    Raises:
        RunError / DataError: one line naming the problem (no run folder, no checkpoint yet,
        the scene folder it was trained on is gone, a checkpoint this version cannot read, ...).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found")
    if mesh_resolution < 16:
        raise RunError(f"--mesh-resolution: expected at least 16, got {mesh_resolution}")
    try:
        trained = load_trained_run(run_dir, resolve_device(device), scene_path=scene_path)
    except (RuntimeError, KeyError) as exc:  # weights that do not fit this version's model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{run_dir / 'checkpoints'}: cannot load the latest checkpoint ({first})") from None
    mesh_dir = ensure_meshes(trained, run_dir / "meshes", mesh_resolution, log=log)
    return RunAccess(trained, mesh_dir, log)


def read_fscores(mesh_dir: Path, log: Callable[[str], None] = print) -> dict[int, float]:
    """Per-object F-scores {object id: F-score} from ``mesh_dir/geometry.json`` ({} when absent).

    Accepts the output of ``clusteringsdf eval --mesh ... --json`` (``{"geometry": {...}}``) and
    that of ``evaluate_meshes`` itself. A file that does not parse is reported and ignored.
    """
    path = mesh_dir / GEOMETRY_SCORES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        data = data.get("geometry", data)
        matches = (data.get("objects") or {}).get("matches", [])
        return {int(m["object"]): float(m["fscore"]) for m in matches}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log(f"note: {path}: ignored, not a geometry score file ({type(exc).__name__}: {exc})")
        return {}


class RunAccess:
    """A trained run opened for viewing; see the module docstring for the interface."""

    def __init__(self, trained: TrainedRun, mesh_dir: Path, log: Callable[[str], None] = print) -> None:
        self._trained = trained
        self._mesh_dir = mesh_dir
        self._log = log
        self._lock = threading.RLock()
        self._tmp: Path | None = None
        self._strips: dict[str, np.ndarray] = {}
        self._colourings: dict[str, Meshes] = {}
        scene = trained.scene
        self.run_dir = trained.run_dir
        self._channel_classes = trained.method.votes.classes().cpu().numpy()

        index = json.loads((mesh_dir / "index.json").read_text())
        fscores = read_fscores(mesh_dir, log)
        self._objects: list[ObjectInfo] = []
        self._object_geometry: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for entry in sorted(index.get("objects", []), key=lambda e: int(e["id"])):
            vertices, faces = read_mesh_arrays(mesh_dir / entry["file"], missing="mesh file not found (listed in index.json)")
            object_id = int(entry["id"])
            self._object_geometry[object_id] = (vertices, faces)
            self._objects.append(
                ObjectInfo(
                    id=object_id,
                    class_id=int(entry["class"]),
                    class_name=str(entry.get("class_name", entry["class"])),
                    thing=bool(entry.get("thing", scene.classes.is_thing(int(entry["class"])))),
                    bbox_min=np.asarray(entry.get("bbox_min", vertices.min(0) if len(vertices) else np.zeros(3)), dtype=np.float64),
                    bbox_max=np.asarray(entry.get("bbox_max", vertices.max(0) if len(vertices) else np.zeros(3)), dtype=np.float64),
                    fscore=fscores.get(object_id),
                )
            )
        self._background = None  # (vertices, faces, owner channel per vertex)
        if (mesh_dir / "scene_instance.ply").is_file():
            vertices, faces = read_mesh_arrays(mesh_dir / "scene_instance.ply")
            with self._lock:
                owner = self._owners(vertices)
            listed = np.isin(owner, [o.id for o in self._objects])
            keep = listed[faces].sum(1) < 2  # faces with at most one vertex on a listed object
            used, compact = np.unique(faces[keep], return_inverse=True)
            if len(used):
                self._background = (vertices[used], compact.reshape(-1, 3).astype(np.int32), owner[used])

    # ------------------------------------------------------------------------------ description

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def summary(self) -> str:
        """One line: mode, label source, iterations and scene."""
        config = self._trained.config
        return (
            f"{config.mode} run on {config.data.labels} labels, {self._trained.iteration} iterations, "
            f"scene {self._trained.scene.root.name}"
        )

    @property
    def up(self) -> np.ndarray:
        """(3,) unit world up direction: the mean of the cameras' up vectors (minus their y axis)."""
        up = -self._trained.scene.poses[:, :3, 1].astype(np.float64).mean(0)
        return up / max(float(np.linalg.norm(up)), 1e-12)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) world box of the scene content (min, max corners)."""
        scene = self._trained.scene
        return scene.normalization.invert(scene.bbox.astype(np.float64))

    def objects(self) -> list[ObjectInfo]:
        """Objects with a mesh, by id."""
        return list(self._objects)

    def cameras(self, thumbnail_width: int = 128) -> list[CameraInfo]:
        """Train and test cameras (in split order) with thumbnails at most ``thumbnail_width`` wide."""
        from PIL import Image

        scene = self._trained.scene
        poses = scene.normalization.pose_to_world(scene.poses.astype(np.float64))
        height, width = scene.hw
        size = (min(width, thumbnail_width), max(1, round(height * min(width, thumbnail_width) / width)))
        cameras = []
        for split in ("train", "test"):
            for frame in scene.splits.get(split, []):
                if scene.colors is not None:
                    thumbnail = np.asarray(Image.fromarray(scene.colors[frame]).resize(size, Image.BILINEAR))
                else:
                    thumbnail = np.full((size[1], size[0], 3), 128, np.uint8)
                cameras.append(
                    CameraInfo(
                        frame=scene.frame_names[frame],
                        split=split,
                        pose_world=poses[frame],
                        intrinsics=scene.intrinsics[frame].astype(np.float64),
                        hw=scene.hw,
                        thumbnail=thumbnail,
                    )
                )
        return cameras

    # ---------------------------------------------------------------------------------- meshes

    def meshes(self, colouring: str) -> Meshes:
        """Background and object meshes with vertex colours by ``colouring`` (one of COLOURINGS)."""
        if colouring not in COLOURINGS:
            raise ValueError(f"colouring must be one of {COLOURINGS}, got {colouring!r}")
        with self._lock:
            if colouring not in self._colourings:
                self._colourings[colouring] = self._coloured(colouring)
            return self._colourings[colouring]

    def _coloured(self, colouring: str) -> Meshes:
        objects = {}
        for info in self._objects:
            vertices, faces = self._object_geometry[info.id]
            if colouring == "instance":
                colors = instance_color(np.full(len(vertices), info.id))
            elif colouring == "class":
                colors = class_color(np.full(len(vertices), info.class_id))
            else:
                colors = self._field_colors(vertices, faces)
            objects[info.id] = MeshData(vertices, faces, colors)
        background = None
        if self._background is not None:
            vertices, faces, owner = self._background
            if colouring == "instance":
                colors = np.where((owner > 0)[:, None], instance_color(owner), np.uint8(BACKGROUND_GREY))
            elif colouring == "class":
                colors = class_color(self._vertex_classes(vertices, owner))
            else:
                colors = self._field_colors(vertices, faces)
            background = MeshData(vertices, faces, colors)
        return Meshes(background, objects)

    def _normalised(self, points_world: np.ndarray) -> np.ndarray:
        """World points (V, 3) in the model's normalised frame."""
        return self._trained.scene.normalization.apply(points_world.astype(np.float64))

    def _owners(self, vertices: np.ndarray) -> np.ndarray:
        """(V,) arg-min SDF channel at world points (V, 3)."""
        return owner_channels(self._trained, self._normalised(vertices), chunk=_CHUNK)

    def _vertex_classes(self, vertices: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """(V,) class per background vertex: its channel's class, or for channel 0 (and channels
        without votes) the best observed stuff class of the semantic head (-1 when there is none)."""
        classes = np.where(owner > 0, self._channel_classes[owner], -1)
        missing = np.nonzero(classes < 0)[0]
        if len(missing):
            classes[missing] = stuff_classes_at(self._trained, self._normalised(vertices[missing]), chunk=_CHUNK)
        return classes

    def _field_colors(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(V, 3) uint8: the colour network at each vertex, viewed along minus the mesh's vertex
        normal (marching cubes orients faces towards free space, where the SDF grows)."""
        import trimesh

        normals = np.array(trimesh.Trimesh(vertices=vertices, faces=faces, process=False).vertex_normals)  # a writable copy
        return field_colors(self._trained.model, Surface(self._normalised(vertices), faces, normals), chunk=_CHUNK)

    # -------------------------------------------------------------------------------- rendering

    def render(self, pose_world: np.ndarray, intrinsics: np.ndarray, hw: tuple[int, int]) -> dict[str, np.ndarray]:
        """Render one camera (pose (4, 4) world camera-to-world, intrinsics (3, 3) at hw = (H, W))
        with the model: ``colour``, ``depth`` (turbo colour map, near to the 99th percentile) and
        ``labels`` (thing pixels by instance, stuff pixels by class), each uint8 (H, W, 3)."""
        from ..inference.evaluate_run import label_cameras

        scene = self._trained.scene
        pose = scene.normalization.pose_to_norm(np.asarray(pose_world, dtype=np.float64))
        with self._lock:
            views, semantics, instances = label_cameras(
                self._trained, pose[None].astype(np.float32), np.asarray(intrinsics, dtype=np.float32)[None], progress=False, normals=False,
                hw=(int(hw[0]), int(hw[1])), surface=True,
            )
        view = views[0]
        depth = view.depth / scene.normalization.scale
        valid = depth[depth > 0]
        far = float(np.percentile(valid, 99)) if valid.size else 1.0
        return {"colour": color_image(view.rgb), "depth": depth_image(depth, far), "labels": panoptic_picture(semantics[0], instances[0])}

    def report_strip(self, frame: str) -> np.ndarray | None:
        """The report's picture of a test view (``RUN/report/view_<frame>.png``): input | machine
        labels | ours | ground truth, instances above classes. Built (and kept in memory) when the
        report has none: from ``RUN/eval`` renders when they hold the frame, else by rendering
        the view now. None for a frame outside the test split."""
        path = self.run_dir / "report" / f"view_{frame}.png"
        if path.is_file():
            return layout.read_color(path)
        scene = self._trained.scene
        if frame not in scene.frame_names:
            return None
        index = scene.frame_names.index(frame)
        if index not in np.asarray(scene.splits.get("test", [])):
            return None
        with self._lock:
            if frame not in self._strips:
                self._strips[frame] = self._build_strip(frame, index)
            return self._strips[frame]

    def _build_strip(self, frame: str, index: int) -> np.ndarray:
        from ..inference.evaluate_run import label_cameras
        from ..inference.render import write_views
        from ..inference.report import view_pictures

        scene = self._trained.scene
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="clusteringsdf-viewer-"))
        eval_dir = self.run_dir / "eval"
        if not all((eval_dir / kind / f"{frame}.png").is_file() for kind in ("pred_semantics", "pred_instance")):
            eval_dir = self._tmp / "eval"
            views, semantics, instances = label_cameras(self._trained, scene.poses[[index]], scene.intrinsics[[index]], progress=False, normals=False)
            write_views(eval_dir, [frame], views, semantics, instances=instances, scale=scene.normalization.scale)
        one_view = dataclasses.replace(scene, splits={**scene.splits, "test": np.array([index])})
        (_, file), = view_pictures(one_view, eval_dir, self._tmp, 1)
        return layout.read_color(self._tmp / file)

    # ---------------------------------------------------------------------------------- scoring

    @property
    def can_score_meshes(self) -> bool:
        """Whether the scene has a ground-truth mesh to score the object meshes against."""
        return self._trained.scene.gt_mesh_path is not None

    def score_meshes(self) -> dict[int, float]:
        """Score the meshes against the scene's gt_mesh.ply (``evaluate_meshes``), write the scores
        to ``RUN/meshes/geometry.json`` and attach the per-object F-scores; returns them."""
        from ..evaluation.geometry import evaluate_meshes

        with self._lock:
            result = evaluate_meshes(self._trained.scene.root, self._mesh_dir)
            write_json_atomic(self._mesh_dir / GEOMETRY_SCORES_FILE, {"geometry": result})
            fscores = read_fscores(self._mesh_dir, self._log)
            self._objects = [dataclasses.replace(o, fscore=fscores.get(o.id)) for o in self._objects]
            return fscores

    def close(self) -> None:
        """Remove the temporary pictures."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def panoptic_picture(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): thing pixels (instance > 0) by instance colour, the others by class colour."""
    return np.where((instance > 0)[..., None], instance_color(instance), class_color(semantic))
