"""Geometry scores of extracted meshes against the scene's ``gt_mesh.ply`` (world metres).

Both surfaces are sampled uniformly (seeded). Points that no camera observed are culled from both
sides: a point is observed when it projects into some frame, in front of the camera, within 5 cm
of that frame's depth (without depth maps nothing is culled). Then, with d the distance to the
nearest point of the other surface:

* accuracy = mean d(pred -> GT), completeness = mean d(GT -> pred), Chamfer-L1 = their mean;
* precision / recall = share of pred / GT points with d < threshold (5 cm); F-score = harmonic mean.

Objects: every predicted object mesh (``index.json`` of ``clusteringsdf mesh``) is compared with
every GT thing instance (faces with that ``instance`` id); objects are matched one-to-one by the
Hungarian method on F-score; unmatched GT instances count with F-score 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.layout import GT_MESH_FILE
from ..data.mesh_io import read_labelled_mesh, read_mesh
from ..data.scene import load_scene
from ..data.visibility import VisibilityCuller
from ..errors import DataError

THRESHOLD = 0.05


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points uniform on the triangle surface (area-weighted), seeded."""
    if len(faces) == 0:
        return np.zeros((0, 3))
    rng = np.random.default_rng(seed)
    triangles = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    if area.sum() <= 0:
        return np.zeros((0, 3))
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = triangles[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def surface_distances(pred: np.ndarray, gt: np.ndarray, threshold: float = THRESHOLD, *, pred_tree=None, gt_tree=None) -> dict:
    """Chamfer-L1 and F-score between two point sets (metres); ``pred_tree`` / ``gt_tree``: their
    KD-trees when the caller already has them."""
    from scipy.spatial import cKDTree

    if len(pred) == 0 or len(gt) == 0:
        return {"accuracy": None, "completeness": None, "chamfer_l1": None, "precision": 0.0, "recall": 0.0, "fscore": 0.0}
    to_gt = (gt_tree or cKDTree(gt)).query(pred, workers=-1)[0]
    to_pred = (pred_tree or cKDTree(pred)).query(gt, workers=-1)[0]
    precision = float((to_gt < threshold).mean())
    recall = float((to_pred < threshold).mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    accuracy, completeness = float(to_gt.mean()), float(to_pred.mean())
    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer_l1": (accuracy + completeness) / 2,
        "precision": precision,
        "recall": recall,
        "fscore": fscore,
    }


def _apart(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Whether the boxes of two non-empty point sets (n, 3) are further apart than ``threshold``
    (then no point of one lies within it of the other: F-score 0)."""
    gap = np.maximum(a.min(0) - b.max(0), b.min(0) - a.max(0))
    return bool(np.linalg.norm(np.maximum(gap, 0.0)) >= threshold)


def evaluate_meshes(scene_root: Path, mesh_dir: Path, points: int = 200_000, threshold: float = THRESHOLD, *, seed: int = 0) -> dict:
    """Scene and per-object geometry scores of ``clusteringsdf mesh`` output against gt_mesh.ply."""
    from scipy.optimize import linear_sum_assignment

    scene = load_scene(scene_root, components={"depth"})
    gt_path = scene.root / GT_MESH_FILE
    if not gt_path.is_file():
        raise DataError(gt_path, "scene has no gt_mesh.ply to compare with")
    index_path = mesh_dir / "index.json"
    if not index_path.is_file():
        raise DataError(index_path, "not found (write meshes with `clusteringsdf mesh` first)")
    index = json.loads(index_path.read_text())
    poses = scene.normalization.pose_to_world(scene.poses.astype(np.float64))
    cull = VisibilityCuller(poses, scene.intrinsics.astype(np.float64), scene.depths)

    gt_mesh = read_labelled_mesh(gt_path)
    gt_vertices, gt_faces = gt_mesh.vertices, gt_mesh.faces
    gt_points = sample_surface(gt_vertices, gt_faces, points, seed)
    gt_points = gt_points[cull(gt_points)]
    pred_mesh = read_mesh(mesh_dir / "scene_instance.ply")
    pred_points = sample_surface(np.asarray(pred_mesh.vertices), np.asarray(pred_mesh.faces), points, seed + 1)
    pred_points = pred_points[cull(pred_points)]
    result = {"threshold_m": threshold, "culled_to_observed": scene.depths is not None, "scene": surface_distances(pred_points, gt_points, threshold)}

    instances = gt_mesh.instance
    result["gt_instances_from"] = gt_mesh.instance_source
    if instances is None:
        result["note"] = f"{gt_path}: no per-face or per-vertex instance ids (instance, instance_id, object_id): scene scores only"
        return result
    gt_ids = [int(i) for i in np.unique(instances) if i > 0]
    object_points = {}
    for gt_id in gt_ids:
        sampled = sample_surface(gt_vertices, gt_faces[instances == gt_id], 20_000, seed + gt_id)
        object_points[gt_id] = sampled[cull(sampled)]
    predicted = []
    floaters = {entry["id"]: entry.get("floater_share") for entry in index.get("objects", [])}
    for entry in index.get("objects", []):
        if not entry.get("thing", True):
            continue
        mesh = read_mesh(mesh_dir / entry["file"])
        sampled = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), 20_000, seed + 1000 + entry["id"])
        predicted.append((entry["id"], sampled[cull(sampled)]))
    scores = np.zeros((len(predicted), len(gt_ids)))
    pairs = {}
    # one KD-tree per point set (not per pair); pairs whose boxes lie apart score 0 without a query
    from scipy.spatial import cKDTree

    pred_trees = [cKDTree(pts) if len(pts) else None for _, pts in predicted]
    gt_trees = {gt_id: cKDTree(pts) if len(pts) else None for gt_id, pts in object_points.items()}
    for i, (pred_id, pts) in enumerate(predicted):
        for j, gt_id in enumerate(gt_ids):
            gt_pts = object_points[gt_id]
            if len(pts) and len(gt_pts) and _apart(pts, gt_pts, threshold):
                continue
            pairs[i, j] = surface_distances(pts, gt_pts, threshold, pred_tree=pred_trees[i], gt_tree=gt_trees[gt_id])
            scores[i, j] = pairs[i, j]["fscore"]
    rows, cols = linear_sum_assignment(-scores) if len(predicted) and len(gt_ids) else ([], [])
    matches = []
    for i, j in zip(rows, cols):
        if scores[i, j] > 0:
            matches.append({"object": predicted[i][0], "gt_instance": gt_ids[j], **pairs[i, j], "floater_share": floaters.get(predicted[i][0])})
    fscores = {m["gt_instance"]: m["fscore"] for m in matches}
    chamfers = [m["chamfer_l1"] for m in matches if m["chamfer_l1"] is not None]
    result["objects"] = {
        "gt_instances": len(gt_ids),
        "predicted": len(predicted),
        "matched": len(matches),
        "mean_fscore": float(np.mean([fscores.get(g, 0.0) for g in gt_ids])) if gt_ids else None,
        "mean_chamfer_l1_matched": float(np.mean(chamfers)) if chamfers else None,
        "max_floater_share": max((m["floater_share"] or 0.0 for m in matches), default=None),
        "matches": matches,
    }
    return result


def summarize_geometry(scores: dict) -> dict:
    """The headline geometry figures of :func:`evaluate_meshes`: scene Chamfer-L1 / F-score /
    precision / recall, and for objects the GT things matched, mean F-score (unmatched GT count 0)
    and the largest floater share of an object mesh."""
    scene = scores["scene"]
    summary = {"scene": {k: scene[k] for k in ("chamfer_l1", "fscore", "precision", "recall")}}
    objects = scores.get("objects")
    if objects is not None:
        summary["objects"] = {k: objects[k] for k in ("gt_instances", "matched", "mean_fscore", "mean_chamfer_l1_matched")}
        summary["objects"]["max_floater_share"] = objects.get("max_floater_share")
    if "note" in scores:
        summary["note"] = scores["note"]
    return summary
