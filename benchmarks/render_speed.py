"""Rendering speed of trajectory frames with normals (colour, depth, normals, labels), new path
against the old one, in one run on the same machine and frame size.

The old path is the package as it was at ``--old-commit`` (default: the last commit before the
inference speed-ups), checked out into benchmarks/out/old_src and run in a subprocess on a copy of
the run whose checkpoint is converted back to that version's format. Both render the same orbit
frames; the script prints frames per second of each, the speed-up, and how much the pictures differ
(colour PSNR between the two renders, share of pixels with the same labels).

    python benchmarks/render_speed.py --run RUN [--frames 6] [--old-commit 419b33e]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import OUT

ROOT = Path(__file__).resolve().parent.parent

RENDER = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
run, frames, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
try:
    from clusteringsdf.runs import load_trained_run
except ImportError:
    from clusteringsdf.inference.loading import load_trained_run
from clusteringsdf.inference.evaluate_run import label_cameras
from clusteringsdf.inference.trajectory import trajectory_poses
trained = load_trained_run(run, torch.device("cpu"))
scene = trained.scene
train = scene.split("train")
poses = trajectory_poses(scene.poses[train], scene.bbox, "orbit", frames)
intrinsics = np.repeat(scene.intrinsics[train[:1]], len(poses), axis=0)
try:
    label_cameras(trained, poses[:1], intrinsics[:1], progress=False, surface=True)  # warm-up
    start = time.perf_counter()
    views, semantics, instances = label_cameras(trained, poses, intrinsics, progress=False, surface=True)
except TypeError:  # the old signature
    label_cameras(trained.renderer, trained.config, scene, poses[:1], intrinsics[:1], False)
    start = time.perf_counter()
    views, semantics, instances = label_cameras(trained.renderer, trained.config, scene, poses, intrinsics, False)
seconds = time.perf_counter() - start
np.savez(out, rgb=np.stack([v.rgb for v in views]), normal=np.stack([v.normal for v in views]),
         semantic=np.stack(semantics), instance=np.stack(instances))
print(json.dumps({"seconds": seconds, "frames": len(views)}))
"""


def old_checkout(commit: str) -> Path:
    """The package at ``commit`` (a git worktree under benchmarks/out/old_src)."""
    path = OUT / "old_src" / commit
    if not (path / "src" / "clusteringsdf").is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True)
    return path


def old_format_copy(run: Path, folder: Path) -> Path:
    """A copy of the run whose latest checkpoint has the pre-split layout (one Renderer state)."""
    from clusteringsdf.runs import latest_checkpoint

    copy = folder / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval*", "meshes", "report*", "tb", "trajectory_*", "render_*"))
    path = latest_checkpoint(copy)
    state = torch.load(path, weights_only=True)
    if "method" in state:
        model = {k: v for k, v in state["model"].items() if not k.startswith("volume.")}
        model["channel_votes"] = state["method"]["votes.votes"]
        model.update(_slow_head(state))
        volume = state["model"]["volume.values"] if bool(state["model"]["volume.ready"]) else None
        state = {**{k: v for k, v in state.items() if k not in ("method", "format")}, "model": model, "volume": volume}
        torch.save(state, path)
    return copy


def _slow_head(state: dict) -> dict:
    """The old Renderer held Contrastive Lift's EMA head in every mode: the method's, or zeros."""
    heads = {k: v for k, v in state["method"].items() if k.startswith("slow_embedding_head.")}
    if heads:
        return heads
    field = state["config"]["field"]
    features, hidden, width = field["feature_dim"], field["semantic_hidden_dim"], field["embedding_dim"]
    shapes = {"0.weight": (hidden, features), "0.bias": (hidden,), "2.weight": (width, hidden), "2.bias": (width,)}
    return {f"slow_embedding_head.{k}": torch.zeros(shape) for k, shape in shapes.items()}


def render(src: Path | None, run: Path, frames: int, out: Path, threads: int) -> dict:
    env = None
    if src is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(src / "src")}
    done = subprocess.run([sys.executable, "-c", RENDER, str(run), str(frames), str(out), str(threads)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"render failed ({'old' if src else 'new'} path): {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--old-commit", default="419b33e")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = render(old_checkout(args.old_commit), old_format_copy(args.run, tmp), args.frames, tmp / "old.npz", args.threads)
        new = render(None, args.run, args.frames, tmp / "new.npz", args.threads)
        a, b = np.load(tmp / "old.npz"), np.load(tmp / "new.npz")
        mse = float(np.mean((a["rgb"] - b["rgb"]) ** 2))
        result = {
            "run": str(args.run),
            "frames": args.frames,
            "frame_size": list(a["rgb"].shape[1:3]),
            "threads": args.threads,
            "old_commit": args.old_commit,
            "old_seconds_per_frame": round(old["seconds"] / args.frames, 2),
            "new_seconds_per_frame": round(new["seconds"] / args.frames, 2),
            "speedup": round(old["seconds"] / new["seconds"], 2),
            "colour_psnr_new_vs_old_db": round(10 * np.log10(1.0 / max(mse, 1e-12)), 1),
            "normal_mean_angle_deg": round(float(np.degrees(np.arccos(np.clip((a["normal"] * b["normal"]).sum(-1), -1, 1))).mean()), 2),
            "same_semantic_pixels": round(float((a["semantic"] == b["semantic"]).mean()), 4),
            "same_instance_pixels": round(float((a["instance"] == b["instance"]).mean()), 4),
        }
    path = OUT / "results" / "render_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
