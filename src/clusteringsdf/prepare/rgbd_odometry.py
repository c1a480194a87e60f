"""Camera tracking from colour + depth (Open3D): odometry, ICP, loop closures and a pose graph.

For bare indoor frames where SIFT finds too little to match, depth still constrains the motion;
with SfM poses given (``prepare --poses auto`` with depth and intrinsics) they guide the tracking,
which then refines them.

1. **Odometry** between consecutive frames with Open3D's hybrid (photometric + geometric) RGB-D
   odometry, started from the given poses' relative motion, else from the previous step's motion
   (constant velocity), then no motion, and last a global registration of the two point clouds
   (FPFH features + RANSAC): the first guess that converges confidently (enough depth agreement
   and a photometric error under twice the median of the frames tracked so far) is kept; without
   one, the result with the lowest photometric error among those that reproject the most depth
   consistently wins. (A pair where a local guess converged to a wrong minimum 0.57 m off had a
   photometric error far above that median.) A frame no guess registers is left out and the next
   one is registered to the last good frame.
2. **ICP polish**: every registration is refined by point-to-plane ICP on the two depth maps (2 cm
   then 1 cm voxels at 3 m, normals from the depth image), and the pose-graph edge gets the
   information of its ICP correspondences. Odometry alone left 0.2-1.8 degrees of drift on 100-frame
   synthetic captures; with ICP it is 0.01-0.08 degrees (docs/results.md).
3. **Extra edges** to the frame two back (ICP from the chained poses), and **loop closures**
   between key frames that look at the same place (at least :data:`LOOP_MIN_OVERLAP` of one's
   depth inside the other's view under the current poses), kept when enough depth agrees and the
   photometric error is under twice the median of the sequential registrations (a skip edge stuck
   in a wrong minimum 8 cm off had 1.4x the error of the right one and pulled the graph).
4. **Pose graph** optimisation (Open3D's Levenberg-Marquardt with line-process pruning of wrong
   loop closures), twice: the optimised poses find the second round's loop closures.

Poses are metric (from the depth) in the frame of the first tracked camera.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.ndimage import uniform_filter

from ..errors import ClusteringSDFError

__all__ = ["RgbdTrackingOptions", "RgbdTrack", "track_rgbd"]

ICP_VOXELS = (0.0067, 0.0033)  # of the median depth: 2 cm and 1 cm at 3 m
ICP_SOURCE_POINTS = 8000
LOOP_KEYFRAMES = 25
LOOP_MIN_OVERLAP = 0.5
LOOP_PARTNERS = 4
LOOP_ROUNDS = 2
LOOP_PREFERENCE = 0.1


@dataclass(frozen=True)
class RgbdTrackingOptions:
    """Settings of :func:`track_rgbd`.

    Attributes:
        min_fitness: least share of a frame's depth pixels that must reproject consistently into
            the other frame for a registration to count.
        depth_tolerance: relative depth difference under which a reprojected pixel agrees.
        keyframe_every: key frame spacing for loop closures (0 = about :data:`LOOP_KEYFRAMES` key frames).
        loop_fitness: least depth agreement for a loop closure.
        seed: random seed of the global registration (RANSAC).
    """

    min_fitness: float = 0.3
    depth_tolerance: float = 0.03
    keyframe_every: int = 0
    loop_fitness: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_fitness < 1.0 or not 0.0 < self.loop_fitness < 1.0:
            raise ValueError("fitness thresholds must be in (0, 1)")
        if self.depth_tolerance <= 0 or self.keyframe_every < 0:
            raise ValueError("depth_tolerance must be positive and keyframe_every non-negative")


@dataclass
class RgbdTrack:
    """Camera-to-world poses (4, 4) by frame index, frames left out with the reason, statistics."""

    poses: dict[int, np.ndarray]
    failed: dict[int, str] = field(default_factory=dict)
    loop_closures: int = 0
    mean_fitness: float = 0.0


def _require_open3d():
    """The open3d module; a one-line error when it is not installed or its system libraries are missing."""
    if importlib.util.find_spec("open3d") is None:
        raise ClusteringSDFError('RGB-D tracking needs Open3D: pip install -e ".[prepare]"')
    try:
        import open3d
    except (ImportError, OSError) as exc:  # its shared library did not load
        if "libusb" in str(exc):
            raise ClusteringSDFError("RGB-D tracking: Open3D needs the system library libusb-1.0-0 "
                                     "(Debian/Ubuntu: sudo apt-get install libusb-1.0-0)") from None
        raise ClusteringSDFError(f"RGB-D tracking: Open3D cannot be imported ({exc})") from None
    return open3d


class _Frames:
    """Open3D images, clouds and FPFH features of the frames, built once each, on demand."""

    def __init__(self, o3d, colors: list[np.ndarray], depths: list[np.ndarray], k: np.ndarray) -> None:
        self.o3d, self.colors, self.depths, self.k = o3d, colors, depths, k
        height, width = depths[0].shape
        self.intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        valid = np.concatenate([d[d > 0] for d in depths])
        self.median_depth = float(np.median(valid)) if valid.size else 1.0
        self.voxel = 0.03 * self.median_depth
        self.grey = [c.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0 for c in colors]
        self._rgbd: dict[int, object] = {}
        self._features: dict[int, tuple] = {}
        self._clouds: dict[int, list] = {}

    def rgbd(self, i: int):
        if i not in self._rgbd:
            o3d = self.o3d
            color = o3d.geometry.Image(np.ascontiguousarray(self.colors[i]))
            depth = o3d.geometry.Image(np.ascontiguousarray(self.depths[i].astype(np.float32)))
            self._rgbd[i] = o3d.geometry.RGBDImage.create_from_color_and_depth(
                color, depth, depth_scale=1.0, depth_trunc=1e6, convert_rgb_to_intensity=True
            )
        return self._rgbd[i]

    def features(self, i: int):
        if i not in self._features:
            o3d = self.o3d
            cloud = o3d.geometry.PointCloud.create_from_rgbd_image(self.rgbd(i), self.intrinsic).voxel_down_sample(self.voxel)
            cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * self.voxel, max_nn=30))
            fpfh = o3d.pipelines.registration.compute_fpfh_feature(cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * self.voxel, max_nn=100))
            self._features[i] = (cloud, fpfh)
        return self._features[i]

    def clouds(self, i: int) -> list:
        """Frame ``i``'s depth as point clouds with normals on the grids of :data:`ICP_VOXELS` of the
        median depth (for ICP), coarse to fine. The normals come from the depth image itself (see
        :func:`_depth_normals`), which is several times faster than a neighbour search per frame."""
        if i not in self._clouds:
            o3d = self.o3d
            points, normals, valid = _depth_normals(self.depths[i], self.k)
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[valid].astype(np.float64)))
            cloud.normals = o3d.utility.Vector3dVector(normals[valid].astype(np.float64))
            levels = []
            for share in ICP_VOXELS:
                level = cloud.voxel_down_sample(share * self.median_depth)
                level.normalize_normals()
                levels.append(level)
            self._clouds[i] = levels
        return self._clouds[i]


def _camera_points(u: np.ndarray, v: np.ndarray, z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) of pixels (columns ``u``, rows ``v``) at depth ``z`` under K (3, 3)."""
    return np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=-1)


def _depth_normals(depth: np.ndarray, k: np.ndarray, step: int = 2, smooth: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera-frame points (H, W, 3) of a depth map (H, W), their unit surface normals (H, W, 3)
    facing the camera, from central differences ``step`` pixels wide averaged over ``smooth`` x
    ``smooth`` pixels, and where the normals are defined (H, W): valid depth at the pixel and its
    four neighbours without a jump of more than 5% between them (an occlusion edge)."""
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width]
    points = _camera_points(u, v, depth, k)
    s = step
    dx = points[s:-s, 2 * s :] - points[s:-s, : -2 * s]
    dy = points[2 * s :, s:-s] - points[: -2 * s, s:-s]
    z = depth[s:-s, s:-s]
    around = [depth[s:-s, 2 * s :], depth[s:-s, : -2 * s], depth[2 * s :, s:-s], depth[: -2 * s, s:-s]]
    inner = (z > 0) & np.all([(d > 0) & (np.abs(d - z) < 0.05 * z) for d in around], axis=0)
    normals = np.zeros_like(points)
    normals[s:-s, s:-s] = -np.cross(dx, dy) * inner[..., None]
    normals = uniform_filter(normals, size=(smooth, smooth, 1), mode="constant")
    length = np.linalg.norm(normals, axis=-1)
    valid = np.zeros_like(depth, dtype=bool)
    valid[s:-s, s:-s] = inner
    valid &= length > 0
    normals = normals / np.maximum(length, 1e-12)[..., None]
    return points, normals, valid


class _Registration:
    """Pairwise registration of two frames by index (see :meth:`register` and :meth:`refine`)."""

    def __init__(self, frames: _Frames, options: RgbdTrackingOptions) -> None:
        o3d = frames.o3d
        self.o3d, self.frames, self.options = o3d, frames, options
        self.jacobian = o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm()
        self.odometry_option = o3d.pipelines.odometry.OdometryOption(
            iteration_number_per_pyramid_level=o3d.utility.IntVector([40, 20, 10]),
            depth_diff_max=0.04 * frames.median_depth, depth_min=1e-3, depth_max=1e6,
        )
        self.photometric_history: list[float] = []

    def global_guess(self, source: int, target: int) -> np.ndarray | None:
        reg = self.o3d.pipelines.registration
        (cloud_s, fpfh_s), (cloud_t, fpfh_t) = self.frames.features(source), self.frames.features(target)
        distance = 1.5 * self.frames.voxel
        result = reg.registration_ransac_based_on_feature_matching(
            cloud_s, cloud_t, fpfh_s, fpfh_t, True, distance, reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(distance)],
            reg.RANSACConvergenceCriteria(20000, 0.999),
        )
        return np.asarray(result.transformation) if result.fitness > 0 else None

    def _reproject(self, transform: np.ndarray, source: int):
        """The source's depth pixels (subsampled to about 20k) moved by ``transform`` (source ->
        target camera): their rows, columns, target depth (n,), target pixel (n,) x 2, and whether
        they land in front of the target camera and inside its image (n,)."""
        k = self.frames.k
        depth_s = self.frames.depths[source]
        height, width = depth_s.shape
        step = max(1, int(np.sqrt(height * width / 20000)))
        v, u = np.nonzero(depth_s[::step, ::step] > 0)
        v, u = v * step, u * step
        moved = _camera_points(u, v, depth_s[v, u], k) @ transform[:3, :3].T + transform[:3, 3]
        ahead = moved[:, 2] > 1e-3
        zt = np.where(ahead, moved[:, 2], 1.0)
        ut = np.rint(moved[:, 0] / zt * k[0, 0] + k[0, 2]).astype(np.int64)
        vt = np.rint(moved[:, 1] / zt * k[1, 1] + k[1, 2]).astype(np.int64)
        inside = ahead & (ut >= 0) & (ut < width) & (vt >= 0) & (vt < height)
        return v, u, zt, ut, vt, inside

    def overlap(self, transform: np.ndarray, source: int, target: int) -> float:
        """Share of the source's depth pixels that ``transform`` (source -> target) puts inside the
        target's view (in front of it and inside its image), whatever the target's depth there."""
        inside = self._reproject(transform, source)[-1]
        return float(inside.mean()) if inside.size else 0.0

    def agreement(self, transform: np.ndarray, source: int, target: int) -> tuple[float, float]:
        """Share of the source's depth pixels that reproject onto agreeing target depth, and the mean
        absolute grey difference (0-1) over those pixels."""
        v, u, zt, ut, vt, inside = self._reproject(transform, source)
        if zt.size == 0:
            return 0.0, np.inf
        measured = np.zeros_like(zt)
        measured[inside] = self.frames.depths[target][vt[inside], ut[inside]]
        good = inside & (measured > 0) & (np.abs(measured - zt) < self.options.depth_tolerance * zt)
        if not good.any():
            return 0.0, np.inf
        photometric = np.abs(self.frames.grey[source][v[good], u[good]] - self.frames.grey[target][vt[good], ut[good]]).mean()
        return float(good.sum() / zt.size), float(photometric)

    def refine(self, source: int, target: int, guess: np.ndarray):
        """Hybrid odometry from ``guess``: (depth agreement, photometric error, transform source->target,
        information (6, 6)), or None when Open3D reports failure."""
        ok, transform, information = self.o3d.pipelines.odometry.compute_rgbd_odometry(
            self.frames.rgbd(source), self.frames.rgbd(target), self.frames.intrinsic, guess, self.jacobian, self.odometry_option
        )
        if not ok:
            return None
        fitness, photometric = self.agreement(np.asarray(transform), source, target)
        return fitness, photometric, np.asarray(transform), np.asarray(information)

    def icp(self, source: int, target: int, transform: np.ndarray):
        """Point-to-plane ICP from ``transform`` (source -> target), coarse to fine on
        :data:`ICP_VOXELS` of the median depth with :data:`ICP_SOURCE_POINTS` source points:
        (depth agreement, photometric error, transform, information of its correspondences (6, 6))."""
        reg = self.o3d.pipelines.registration
        for share, source_cloud, target_cloud in zip(ICP_VOXELS, self.frames.clouds(source), self.frames.clouds(target)):
            distance = 1.5 * share * self.frames.median_depth
            source_cloud = source_cloud.uniform_down_sample(max(1, len(source_cloud.points) // ICP_SOURCE_POINTS))
            transform = reg.registration_icp(
                source_cloud, target_cloud, distance, transform,
                reg.TransformationEstimationPointToPlane(), reg.ICPConvergenceCriteria(max_iteration=30),
            ).transformation
        transform = np.asarray(transform)
        fitness, photometric = self.agreement(transform, source, target)
        information = reg.get_information_matrix_from_point_clouds(source_cloud, target_cloud, distance, transform)
        return fitness, photometric, transform, np.asarray(information)

    def polish(self, source: int, target: int, result):
        """:meth:`icp` from a registration ``result``; the result as it was when ICP lowers the
        depth agreement (it slid along a plane) or ``result`` is None."""
        if result is None:
            return None
        polished = self.icp(source, target, result[2])
        return result if polished[0] < result[0] - 0.02 else polished

    def register(self, source: int, target: int, guesses: list[np.ndarray], accept: float, *, sequential: bool = False):
        """Refine the guesses in turn until one is confident: ``accept`` depth agreement and (for
        ``sequential`` odometry) a photometric error under twice the median of the accepted
        sequential registrations so far. Without a confident one, also refine the global
        registration and keep the best. The choice is polished by :meth:`polish`.
        Returns (depth agreement, photometric error, transform source->target, information) or None."""
        results = []
        for guess in guesses:
            result = self.refine(source, target, guess)
            if result is None:
                continue
            results.append(result)
            if self._confident(result, accept, sequential):
                break
        else:
            guess = self.global_guess(source, target)
            refined = self.refine(source, target, guess) if guess is not None else None
            if refined is not None:
                results.append(refined)
        if not results:
            return None
        best_fitness = max(r[0] for r in results)
        chosen = min((r for r in results if r[0] >= 0.7 * best_fitness), key=lambda r: r[1])
        if sequential and chosen[0] >= accept:
            self.photometric_history.append(chosen[1])
        return self.polish(source, target, chosen)

    def _confident(self, result, accept: float, sequential: bool) -> bool:
        if result[0] < accept:
            return False
        history = self.photometric_history
        return not sequential or (len(history) >= 3 and result[1] <= 2.0 * float(np.median(history)))

    def plausible(self, result, accept: float) -> bool:
        """A registration good enough for an extra pose-graph edge: ``accept`` depth agreement and a
        photometric error under twice the median of the sequential registrations."""
        if result is None or result[0] < accept:
            return False
        return not self.photometric_history or result[1] <= 2.0 * float(np.median(self.photometric_history))


@dataclass
class _PoseGraph:
    """The pose graph being built: Open3D's ``graph`` (``module`` = ``open3d.pipelines.registration``),
    the graph node of each tracked frame index and its chained camera-to-world pose (4, 4)."""

    module: Any
    graph: Any
    node_of: dict[int, int] = field(default_factory=dict)
    world_from: dict[int, np.ndarray] = field(default_factory=dict)

    def add_node(self, i: int, pose: np.ndarray) -> None:
        """Frame ``i`` as the next node, at camera-to-world ``pose`` (4, 4)."""
        self.world_from[i] = pose
        self.node_of[i] = len(self.graph.nodes)
        self.graph.nodes.append(self.module.PoseGraphNode(pose))

    def update_from_graph(self) -> None:
        """Take the (optimised) poses of the graph's nodes as the frames' poses."""
        for i, node in self.node_of.items():
            self.world_from[i] = np.asarray(self.graph.nodes[node].pose, dtype=np.float64)

    def add_edge(self, source: int, target: int, result, uncertain: bool) -> None:
        """An edge from frame ``source`` to frame ``target`` with the transform (4, 4) and information
        (6, 6) of a registration ``result``."""
        edge = self.module.PoseGraphEdge(self.node_of[source], self.node_of[target], result[2], result[3], uncertain=uncertain)
        self.graph.edges.append(edge)


def _relative(poses: dict[int, np.ndarray], source: int, target: int) -> np.ndarray | None:
    """The transform (4, 4) taking frame ``source``'s camera coordinates to ``target``'s under
    camera-to-world ``poses`` (whatever their world frame), or None when either is missing."""
    if source not in poses or target not in poses:
        return None
    return np.linalg.inv(poses[target]) @ poses[source]


def _track_sequence(
    registration: _Registration, pose_graph: _PoseGraph, options: RgbdTrackingOptions, *, log: Callable[[str], None],
    initial: dict[int, np.ndarray],
) -> tuple[dict[int, str], list[float]]:
    """Step 1: odometry from each frame to the last tracked one (guessed by the ``initial`` poses'
    relative motion where they have both frames, else by constant velocity, then no motion), adding
    nodes and certain edges.
    Returns the frames left out with the reason and the depth agreement of each odometry step."""
    depths, count = registration.frames.depths, len(registration.frames.colors)
    failed: dict[int, str] = {}
    fitnesses: list[float] = []
    first = next((i for i in range(count) if np.any(depths[i] > 0)), None)
    if first is None:
        raise ClusteringSDFError("RGB-D tracking: no frame has valid depth")
    for i in range(first):
        failed[i] = "no valid depth"
    pose_graph.add_node(first, np.eye(4))
    last, velocity = first, np.eye(4)
    for i in range(first + 1, count):
        if not np.any(depths[i] > 0):
            failed[i] = "no valid depth"
            continue
        guided = _relative(initial, i, last)
        guesses = [guided] if guided is not None else [velocity, np.eye(4)]
        result = registration.register(i, last, guesses, options.min_fitness, sequential=True)
        if result is None or result[0] < options.min_fitness:
            failed[i] = f"odometry to frame {last} failed (depth agreement {0.0 if result is None else result[0]:.2f} < {options.min_fitness})"
            continue
        fitness, _, transform, _ = result  # transform maps frame i into frame `last`
        fitnesses.append(fitness)
        pose_graph.add_node(i, pose_graph.world_from[last] @ transform)
        pose_graph.add_edge(i, last, result, uncertain=False)
        velocity = transform if i - last == 1 else np.eye(4)
        last = i
        if len(pose_graph.node_of) % 25 == 0:
            log(f"rgbd: {len(pose_graph.node_of)} of the first {i + 1} frames tracked")
    return failed, fitnesses


def _add_skip_edges(registration: _Registration, pose_graph: _PoseGraph, options: RgbdTrackingOptions) -> None:
    """Step 3: uncertain edges from each tracked frame to the one two back, where plausible (ICP
    from the chained odometry, which is already close)."""
    tracked, world_from = sorted(pose_graph.node_of), pose_graph.world_from
    for a, b in zip(tracked, tracked[2:]):
        guess = np.linalg.inv(world_from[a]) @ world_from[b]
        result = registration.icp(b, a, guess)
        if registration.plausible(result, options.min_fitness):
            pose_graph.add_edge(b, a, result, uncertain=True)


def _add_loop_closures(
    registration: _Registration, pose_graph: _PoseGraph, options: RgbdTrackingOptions, *, tried: set[tuple[int, int]],
    guide: dict[int, np.ndarray],
) -> int:
    """Step 3: uncertain edges between key frames that the ``guide`` poses (the tracked ones, or
    better ones given) say look at the same place (at least :data:`LOOP_MIN_OVERLAP` of one's depth
    in the other's view), registered from the guide's relative pose, skipping the pairs in ``tried``
    (updated). Pairs far apart in the sequence go first, and each key frame takes part in at most
    :data:`LOOP_PARTNERS` of them (a capture that circles one object overlaps everywhere: all pairs
    of its 30 frames doubled the time for no better pose). Returns how many edges were kept."""
    tracked = sorted(pose_graph.node_of)
    world_from = {i: guide.get(i, pose_graph.world_from[i]) for i in tracked}
    every = options.keyframe_every or max(1, len(tracked) // LOOP_KEYFRAMES)
    keys = tracked[::every]
    pairs = [(a, b) for ia, a in enumerate(keys) for b in keys[ia + 1 :] if tracked.index(b) - tracked.index(a) > 2 and (a, b) not in tried]
    pairs.sort(key=lambda pair: tracked.index(pair[0]) - tracked.index(pair[1]))
    partners = dict.fromkeys(keys, 0)
    loops = 0
    for a, b in pairs:
        if partners[a] >= LOOP_PARTNERS or partners[b] >= LOOP_PARTNERS:
            continue
        guess = np.linalg.inv(world_from[a]) @ world_from[b]  # maps b into a
        if registration.overlap(guess, b, a) < LOOP_MIN_OVERLAP:
            continue
        tried.add((a, b))
        partners[a] += 1
        partners[b] += 1
        result = registration.register(b, a, [guess], options.loop_fitness)
        if registration.plausible(result, options.loop_fitness):
            pose_graph.add_edge(b, a, result, uncertain=True)
            loops += 1
    return loops


def _optimise(pose_graph: _PoseGraph, options: RgbdTrackingOptions, median_depth: float) -> None:
    """Step 4: Levenberg-Marquardt pose graph optimisation with pruning of wrong loop closures
    (graphs of more than two nodes)."""
    if len(pose_graph.node_of) <= 2:
        return
    module = pose_graph.module
    option = module.GlobalOptimizationOption(
        max_correspondence_distance=options.depth_tolerance * median_depth,
        edge_prune_threshold=0.25, preference_loop_closure=LOOP_PREFERENCE, reference_node=0,
    )
    module.global_optimization(
        pose_graph.graph, module.GlobalOptimizationLevenbergMarquardt(), module.GlobalOptimizationConvergenceCriteria(), option
    )


def track_rgbd(
    colors: list[np.ndarray],
    depths: list[np.ndarray],
    k: np.ndarray,
    options: RgbdTrackingOptions = RgbdTrackingOptions(),
    *,
    initial: dict[int, np.ndarray] | None = None,
    log: Callable[[str], None] = print,
) -> RgbdTrack:
    """Camera-to-world poses of RGB-D frames in capture order.

    Args:
        colors: uint8 (H, W, 3) per frame.
        depths: float32 (H, W) metres per frame (0 = missing).
        k: pinhole K (3, 3), pixel centres at integer coordinates.
        initial: camera-to-world poses (4, 4) by frame index from elsewhere (structure-from-motion
            made metric), in any world frame: their relative motion is the odometry guess, and
            they choose the first round's loop-closure pairs and guesses.

    Returns:
        Poses of the tracked frames (the first tracked frame is the world frame), the failed frames
        with the reason, the number of loop closures kept and the mean odometry depth agreement.
    """
    o3d = _require_open3d()
    o3d.utility.random.seed(options.seed)
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    frames = _Frames(o3d, colors, depths, np.asarray(k, dtype=np.float64))
    registration = _Registration(frames, options)
    module = o3d.pipelines.registration
    pose_graph = _PoseGraph(module, module.PoseGraph())
    failed, fitnesses = _track_sequence(registration, pose_graph, options, log=log, initial=initial or {})
    _add_skip_edges(registration, pose_graph, options)
    tried: set[tuple[int, int]] = set()
    loops = 0
    for round_ in range(LOOP_ROUNDS):
        found = _add_loop_closures(registration, pose_graph, options, tried=tried, guide=(initial or {}) if round_ == 0 else {})
        loops += found
        _optimise(pose_graph, options, frames.median_depth)
        pose_graph.update_from_graph()
        if not found:
            break
    graph, node_of = pose_graph.graph, pose_graph.node_of
    poses = {i: np.asarray(graph.nodes[node_of[i]].pose, dtype=np.float64) for i in sorted(node_of)}
    return RgbdTrack(poses, failed, loops, float(np.mean(fitnesses)) if fitnesses else 0.0)
