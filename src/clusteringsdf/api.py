"""The Python interface to a trained run: ask it for the SDF, the object at a point, a render from
any camera, its meshes and its objects, in the scene's world frame and units (metres), as the
meshes are written.

    import clusteringsdf

    run = clusteringsdf.load_run("runs/room")
    run.sdf(points)            # (N,) signed distance in metres, points (N, 3) world
    run.object_ids(points)     # (N,) object id (0: background), classes_at(points) their classes
    out = run.render(K, pose, (480, 640))  # rgb, depth (m), normal, semantic, instance maps
    run.objects                # id, class, box, centroid, score of every object
    run.meshes()               # trimesh meshes, metadata {"id", "class", "class_name", "thing"}

Loading needs only the run folder (its config, latest checkpoint and recorded cameras); the scene
folder is read only for what needs its frames (meshing's observation rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.mesh_io import read_mesh
from .data.scene import SegmentationClasses
from .errors import ClusteringSDFError
from .inference.channels import analyse_channels, object_map
from .inference.evaluate_run import channel_objects, label_cameras
from .inference.mesh import ensure_meshes
from .inference.point_labels import owner_channels, stuff_classes_at
from .model import map_chunks
from .runs import TrainedRun, load_trained_run, resolve_device

CHUNK = 65_536  # points per field evaluation


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a run: ``id`` (the instance id of its renders and meshes), the SDF ``channels``
    holding it, its class, whether the class is a thing, its axis-aligned box (``box_min``,
    ``box_max`` (3,) world metres, of the surface it owns) and ``centroid`` (3,), and ``score`` in
    [0, 1]: the share of the training labels seen in its channels that gave it its class."""

    id: int
    channels: tuple[int, ...]
    class_id: int
    class_name: str
    thing: bool
    box_min: np.ndarray
    box_max: np.ndarray
    centroid: np.ndarray
    score: float


@dataclass
class Render:
    """One view at H x W: ``rgb`` (H, W, 3) float in [0, 1], ``depth`` (H, W) z-depth in metres,
    ``normal`` (H, W, 3) camera-frame unit normals, ``semantic`` (H, W) class ids and ``instance``
    (H, W) object ids (0: stuff / background), fused as the ``render`` command fuses them."""

    rgb: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


class Run:
    """A trained run opened for queries (see the module docstring). Build it with :func:`load_run`."""

    def __init__(self, trained: TrainedRun) -> None:
        self._trained = trained
        self._objects: list[ObjectInfo] | None = None

    @property
    def path(self) -> Path:
        return self._trained.run_dir

    @property
    def classes(self) -> SegmentationClasses:
        """The scene's classes: ``names``, ``thing_classes``, ``stuff_classes``."""
        return self._trained.scene.classes

    @property
    def device(self) -> torch.device:
        return self._trained.model.bbox.device

    # --------------------------------------------------------------------------------- points

    def _normalised(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ClusteringSDFError(f"points: expected an (N, 3) array, got shape {points.shape}")
        return self._trained.scene.normalization.apply(points)

    @torch.no_grad()
    def _field(self, points: np.ndarray, function) -> torch.Tensor:
        return map_chunks(lambda p: function(self._trained.model.field.geometry(p)), self._normalised(points), chunk=CHUNK, device=self.device)

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """(N,) the scene's signed distance in metres at world points (N, 3) (negative inside)."""
        values = self._field(points, lambda geometry: geometry.scene_sdf).cpu().numpy()
        return values.astype(np.float64) / self._trained.scene.normalization.scale

    def _objects_at(self, points: np.ndarray) -> np.ndarray:
        """(N,) the object (id) whose channel owns each world point, 0 where no object's does."""
        normalised = self._normalised(points)
        channel = owner_channels(self._trained, normalised)
        known = np.zeros(self._trained.model.field.channels, dtype=bool)
        known[[o.id for o in self.objects]] = True
        ids = channel_objects(self._trained).at(channel, normalised)
        return np.where(known[ids], ids, 0)

    def object_ids(self, points: np.ndarray) -> np.ndarray:
        """(N,) the thing each world point (N, 3) belongs to: the object whose channel's SDF is the
        smallest there (inside it, or nearest outside); 0 for the background and stuff, as in renders."""
        ids = self._objects_at(points)
        things = {o.id for o in self.objects if o.thing}
        return np.where(np.isin(ids, list(things)), ids, 0)

    def classes_at(self, points: np.ndarray) -> np.ndarray:
        """(N,) class id at world points (N, 3): the class of the object whose channel owns the point
        (stuff objects too), elsewhere the semantic head's best stuff class (-1 for runs without one)."""
        ids = self._objects_at(points)
        by_id = {o.id: o.class_id for o in self.objects}
        classes = np.array([by_id.get(int(i), -1) for i in ids], dtype=np.int64)
        missing = np.flatnonzero(ids == 0)
        if len(missing):
            classes[missing] = stuff_classes_at(self._trained, self._normalised(points[missing]))
        return classes

    # --------------------------------------------------------------------------------- views

    def render(self, intrinsics: np.ndarray, pose: np.ndarray, hw: tuple[int, int], *, fast: bool = False) -> Render:
        """Render a pinhole camera: ``intrinsics`` (3, 3) at ``hw`` = (H, W), ``pose`` (4, 4) world
        camera-to-world in the OpenCV convention (x right, y down, z forward). ``fast`` renders each
        ray at its first surface (several times faster) instead of volume rendering."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4) or not np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-4) or np.linalg.det(pose[:3, :3]) < 0:
            raise ClusteringSDFError("pose: expected a rigid (4, 4) camera-to-world matrix (a rotation and a translation)")
        scene = self._trained.scene
        views, semantics, instances = label_cameras(
            self._trained, scene.normalization.pose_to_norm(pose)[None].astype(np.float32), np.asarray(intrinsics, dtype=np.float32)[None],
            progress=False, hw=(int(hw[0]), int(hw[1])), surface=fast,
        )
        view = views[0]
        return Render(view.rgb, view.depth / scene.normalization.scale, view.normal, semantics[0], instances[0])

    # --------------------------------------------------------------------------------- objects

    @property
    def objects(self) -> list[ObjectInfo]:
        """The run's objects (found once on a grid at ``inference.object_grid`` resolution)."""
        if self._objects is None:
            self._objects = self._find_objects()
        return list(self._objects)

    def _find_objects(self) -> list[ObjectInfo]:
        trained = self._trained
        method = trained.method
        if not method.uses_opacity or method.classes_in_channels:
            return []  # objects are not channels: instances come from render-time clustering, or channels are classes
        votes = method.votes.votes.cpu().numpy()
        classes = method.votes.classes().cpu().numpy()
        grid = trained.config.inference.object_grid  # 0: every channel its own object
        analysis = analyse_channels(trained.model, grid or 128, classes, CHUNK)
        groups = analysis.groups if grid else [[c] for group in analysis.groups for c in group]
        if grid and trained.object_map is None:  # the render-time labels of the same analysis
            trained.object_map = object_map(trained.model, classes, grid, CHUNK, analysis=analysis)
        names, to_world = self.classes.names, trained.scene.normalization.invert
        out = []
        for group in groups:
            class_id = int(classes[group[0]])
            cells = np.argwhere(np.isin(analysis.owner, group) & analysis.near_surface)
            points = to_world(analysis.grid.points_at(cells))
            seen = float(votes[group].sum())
            out.append(ObjectInfo(
                id=group[0], channels=tuple(group), class_id=class_id, class_name=names.get(class_id, f"class{class_id}"),
                thing=self.classes.is_thing(class_id), box_min=points.min(0), box_max=points.max(0), centroid=points.mean(0),
                score=float(votes[group, class_id].sum()) / seen if seen > 0 else 0.0,
            ))
        return sorted(out, key=lambda o: o.id)

    def meshes(self, resolution: int = 256) -> list:
        """One ``trimesh.Trimesh`` per object, in world metres, its ``metadata`` holding ``id``,
        ``channels``, ``class``, ``class_name`` and ``thing``: the run's meshes (RUN/meshes), extracted
        at ``resolution`` first when the run has none."""
        import json

        mesh_dir = ensure_meshes(self._trained, self.path / "meshes", resolution, log=lambda message: None)
        index = json.loads((mesh_dir / "index.json").read_text())
        meshes = []
        for entry in index["objects"]:
            mesh = read_mesh(mesh_dir / entry["file"], missing="mesh file not found (listed in index.json)")
            mesh.metadata.update({key: entry[key] for key in ("id", "channels", "class", "class_name", "thing")})
            meshes.append(mesh)
        return meshes


def load_run(path: str | Path, device: str | torch.device = "auto", *, scene: str | Path | None = None) -> Run:
    """Open a trained run for queries. ``device``: auto, cpu, cuda or a torch device; ``scene``: the
    run's scene folder, when it is no longer where the run recorded it (only meshing needs it)."""
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    return Run(load_trained_run(Path(path), device, scene_path=None if scene is None else Path(scene)))
