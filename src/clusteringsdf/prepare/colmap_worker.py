"""The only module that imports pycolmap; it runs in a child process (``python -m``).

pycolmap can abort a process that later writes PNG files through another image library, so the
parent never imports it: it writes a request JSON, runs this module on it, and reads back an
``.npz`` (arrays plus a ``meta`` JSON string). Nothing here writes images.

Requests (``{"task": ...}``):

* ``sfm``: SIFT features (one shared camera), sequential or exhaustive matching, the incremental
  mapper (with ``keyframe_stride`` > 1: first on every stride-th frame, then all frames registered
  into the largest key-frame model, and all frames at once as well when that leaves over 10%
  unregistered, keeping the larger); answers the largest model, the images of every model and
  matching statistics.
* ``read_model``: a COLMAP sparse model folder (binary or text).
* ``undistort``: the pinhole camera and remap grid that undistort images of a COLMAP camera.
* ``write_model``: a sparse model (binary) of one camera, posed images and 3D points, each point
  observed in one image (arrays from an ``.npz`` the request names).

A model answer holds, per registered image, its name, ``cam_from_world`` (3, 4) and observations
(u, v, z): keypoints with a triangulated point in COLMAP pixel coordinates (pixel centres at +0.5)
and the depth of that point in the camera.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np


def _model_answer(reconstruction, arrays: dict, meta: dict) -> None:
    images = []
    for image_id in sorted(reconstruction.images):
        image = reconstruction.images[image_id]
        if not image.has_pose:
            continue
        matrix = np.asarray(image.cam_from_world().matrix(), dtype=np.float64)
        observations = []
        for point2d in image.points2D:
            if point2d.has_point3D():
                xyz = reconstruction.points3D[point2d.point3D_id].xyz
                z = float(matrix[2, :3] @ xyz + matrix[2, 3])
                observations.append((float(point2d.xy[0]), float(point2d.xy[1]), z))
        key = f"image{len(images)}"
        arrays[f"{key}_pose"] = matrix
        arrays[f"{key}_obs"] = np.asarray(observations, dtype=np.float64).reshape(-1, 3)
        images.append({"name": image.name, "camera_id": int(image.camera_id)})
    meta["images"] = images
    meta["cameras"] = {
        str(camera_id): {
            "model": camera.model.name,
            "width": int(camera.width),
            "height": int(camera.height),
            "params": [float(v) for v in camera.params],
        }
        for camera_id, camera in reconstruction.cameras.items()
    }
    meta["num_points3D"] = int(len(reconstruction.points3D))


def _match_statistics(database: Path) -> dict:
    with sqlite3.connect(database) as connection:
        features = [rows for (rows,) in connection.execute("SELECT rows FROM keypoints")]
        pairs = connection.execute("SELECT rows FROM two_view_geometries").fetchall()
    return {
        "median_features": float(np.median(features)) if features else 0.0,
        "pairs_matched": len(pairs),
        "pairs_verified": int(sum(1 for (rows,) in pairs if rows > 0)),
    }


def run_sfm(request: dict, arrays: dict, meta: dict) -> None:
    import pycolmap

    work = Path(request["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    if database.exists():
        database.unlink()
    threads = int(request.get("threads", 2))
    pycolmap.set_random_seed(int(request.get("seed", 0)))  # RANSAC in matching and mapping: repeatable runs
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = request["camera_model"]
    if request.get("camera_params"):
        reader.camera_params = ",".join(f"{v:.10g}" for v in request["camera_params"])
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.sift.max_num_features = int(request.get("max_features", 8192))
    pycolmap.extract_features(
        database, request["image_dir"], image_names=request["image_names"], camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
    )
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    if request["matching"] == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = int(request.get("overlap", 10))
        pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
    meta["matching"] = _match_statistics(database)
    def mapper_options(names: list[str] | None = None):
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = threads
        options.random_seed = int(request.get("seed", 0))
        if names is not None:
            options.image_names = names
        if request.get("camera_params"):  # known intrinsics stay fixed
            options.ba_refine_focal_length = False
            options.ba_refine_principal_point = False
            options.ba_refine_extra_params = False
        return options

    def by_size(reconstructions: dict) -> list:
        return sorted(reconstructions.items(), key=lambda item: item[1].num_reg_images(), reverse=True)

    names = list(request["image_names"])
    stride = int(request.get("keyframe_stride", 1))
    models = []
    if stride > 1:  # key frames first (wider baselines), then every frame registered into that model
        keyframes = by_size(pycolmap.incremental_mapping(database, request["image_dir"], work / "sparse_keyframes", mapper_options(names[::stride])))
        if keyframes:
            models = by_size(pycolmap.incremental_mapping(
                database, request["image_dir"], work / "sparse", mapper_options(), input_path=work / "sparse_keyframes" / str(keyframes[0][0])
            ))
            models += keyframes[1:]  # other key-frame models show a split
    if not models or models[0][1].num_reg_images() < 0.9 * len(names):  # no or a partial key-frame model: map all at once too
        direct = by_size(pycolmap.incremental_mapping(database, request["image_dir"], work / "sparse_direct", mapper_options()))
        if direct and (not models or direct[0][1].num_reg_images() > models[0][1].num_reg_images()):
            models = direct
    meta["models"] = [[r.images[i].name for i in sorted(r.images) if r.images[i].has_pose] for _, r in models]
    if models:
        _model_answer(models[0][1], arrays, meta)
    else:
        meta["images"], meta["cameras"] = [], {}


def read_model(request: dict, arrays: dict, meta: dict) -> None:
    import pycolmap

    try:
        reconstruction = pycolmap.Reconstruction(request["model_dir"])
    except Exception as exc:  # noqa: BLE001 - pycolmap raises plain exceptions on bad files
        meta["error"] = f"not a readable COLMAP model ({exc})"
        return
    meta["models"] = [[reconstruction.images[i].name for i in sorted(reconstruction.images)]]
    _model_answer(reconstruction, arrays, meta)


def undistort(request: dict, arrays: dict, meta: dict) -> None:
    """Pinhole K (COLMAP pixel convention) keeping the focal lengths and principal point, and for each
    output pixel centre the source position in the distorted image (H, W, 2) in COLMAP coordinates."""
    import pycolmap

    camera = pycolmap.Camera(model=request["model"], width=request["width"], height=request["height"], params=request["params"])
    k = np.asarray(camera.calibration_matrix(), dtype=np.float64)
    width, height = int(request["width"]), int(request["height"])
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    source = np.asarray(camera.img_from_cam(rays, check_cheirality=False), dtype=np.float64)
    arrays["k"] = k
    arrays["map"] = source.reshape(height, width, 2).astype(np.float32)


def write_model(request: dict, arrays: dict, meta: dict) -> None:
    """Write ``request["out_dir"]``: camera 1 (``request["camera"]``: model, width, height,
    params), images 1..n (``request["images"]``: name and ``cam_from_world`` (3, 4)) and the points
    of ``request["points"]`` (.npz: ``xyz`` (N, 3), ``rgb`` (N, 3) uint8, ``image`` (N,) index into
    the images, ``uv`` (N, 2) COLMAP pixel coordinates of the point in that image)."""
    import pycolmap

    with np.load(request["points"], allow_pickle=False) as data:
        xyz, rgb, owner, uv = data["xyz"], data["rgb"], data["image"], data["uv"]
    reconstruction = pycolmap.Reconstruction()
    camera = request["camera"]
    reconstruction.add_camera_with_trivial_rig(
        pycolmap.Camera(model=camera["model"], width=camera["width"], height=camera["height"], params=camera["params"], camera_id=1)
    )
    first = np.searchsorted(owner, np.arange(len(request["images"]) + 1))  # points are sorted by image
    for index, entry in enumerate(request["images"]):
        image = pycolmap.Image(name=entry["name"], keypoints=uv[first[index] : first[index + 1]].astype(np.float64), camera_id=1, image_id=index + 1)
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.asarray(entry["cam_from_world"], dtype=np.float64)))
    for k in range(len(xyz)):
        track = pycolmap.Track()
        track.add_element(int(owner[k]) + 1, int(k - first[owner[k]]))
        reconstruction.add_point3D(xyz[k].astype(np.float64), track, rgb[k].astype(np.uint8))
    Path(request["out_dir"]).mkdir(parents=True, exist_ok=True)
    reconstruction.write(request["out_dir"])
    meta["images"], meta["points3D"] = int(reconstruction.num_images()), int(reconstruction.num_points3D())


TASKS = {"sfm": run_sfm, "read_model": read_model, "undistort": undistort, "write_model": write_model}


def main(argv: list[str]) -> int:
    request_path, answer_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    arrays: dict = {}
    meta: dict = {}
    TASKS[request["task"]](request, arrays, meta)
    np.savez(answer_path, meta=np.array(json.dumps(meta)), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
