"""Surface quality of a trained run: scene and per-object Chamfer / F-score@5cm against the scene's
GT mesh, matched GT things, and floaters (mesh area outside an object's largest connected component,
measured on the mesh files written).

The run is meshed by the installed package, or with ``--old-commit C`` by the package as it was at
commit C (a git worktree under benchmarks/out/old_src, run in a subprocess on the run's own
checkpoint, which must be of that version's format: a run trained by that version). Scoring always
uses the installed package, so a before/after pair is scored the same way.

    python benchmarks/surface_quality.py --run RUN [--resolution 256] [--old-commit C] [--name NAME]

Writes benchmarks/out/results/<name>.json (scene scores and one row per GT thing) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

from _common import OUT
from render_speed import old_checkout

MESH_CLI = "import sys; from clusteringsdf.cli import main; sys.exit(main(sys.argv[1:]))"


def mesh_run(run: Path, out: Path, resolution: int, old_commit: str | None, threads: int) -> float:
    """Mesh ``run`` into ``out`` with the installed package or the one at ``old_commit``; seconds taken."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if old_commit:
        env["PYTHONPATH"] = str(old_checkout(old_commit) / "src")
    command = [sys.executable, "-c", MESH_CLI, "mesh", "--run", str(run), "--resolution", str(resolution), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"meshing {run} failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    return time.perf_counter() - start


def floater_share(path: Path) -> float:
    """Area outside the largest connected component over the mesh's whole area."""
    from clusteringsdf.inference.mesh_rules import Surface, clean_components

    mesh = trimesh.load(path, process=False)
    if len(mesh.faces) == 0:
        return 0.0
    vertices = np.asarray(mesh.vertices)
    return clean_components(Surface(vertices, np.asarray(mesh.faces), np.zeros_like(vertices)), 0.0)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--old-commit", default=None, help="mesh with the package at this commit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="surface_quality")
    args = parser.parse_args()

    from clusteringsdf.data.mesh_io import read_labelled_mesh
    from clusteringsdf.evaluation.geometry import evaluate_meshes

    scene = Path(json.loads((args.run / "config.json").read_text())["scene"])  # old runs too
    mesh_dir = OUT / "meshes" / args.name
    seconds = mesh_run(args.run, mesh_dir, args.resolution, args.old_commit, args.threads)
    scores = evaluate_meshes(scene, mesh_dir)
    if "objects" not in scores:
        raise SystemExit(scores["note"])
    index = json.loads((mesh_dir / "index.json").read_text())
    files = {entry["id"]: mesh_dir / entry["file"] for entry in index["objects"]}
    gt_ids = sorted(int(i) for i in np.unique(read_labelled_mesh(scene / "gt_mesh.ply").instance) if i > 0)
    info = scene / "synthetic_info.json"
    names = {o["instance_id"]: o["name"] for o in json.loads(info.read_text())["objects"]} if info.is_file() else {}
    matched = {m["gt_instance"]: m for m in scores["objects"]["matches"]}
    rows = []
    for gt in gt_ids:
        m = matched.get(gt)
        row = {"gt_instance": gt, "gt_name": names.get(gt)}
        if m is None:
            row.update({"object": None, "fscore": 0.0})
        else:
            row.update({k: round(m[k], 4) for k in ("fscore", "precision", "recall", "accuracy", "completeness", "chamfer_l1")})
            row["object"] = m["object"]
            row["floater_share"] = round(floater_share(files[m["object"]]), 4)
        rows.append(row)
    floaters = [r["floater_share"] for r in rows if "floater_share" in r]
    result = {
        "run": str(args.run),
        "mesher": f"package at {args.old_commit}" if args.old_commit else "installed package",
        "resolution": args.resolution,
        "mesh_seconds": round(seconds, 1),
        "scene": {k: round(v, 4) for k, v in scores["scene"].items() if isinstance(v, float)},
        "objects": {
            "gt_things": len(rows),
            "matched": sum(r["object"] is not None for r in rows),
            "mean_fscore": round(float(np.mean([r["fscore"] for r in rows])), 4) if rows else None,
            "max_floater_share": max(floaters, default=None),
        },
        "per_object": rows,
    }
    path = OUT / "results" / f"{args.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
