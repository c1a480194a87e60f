"""What monocular-like depth buys on the synthetic room: sensor depth, relative depth, SfM points, no depth.

The room (`synth --preset room --noise medium`, seed `--seed`) is copied once per variant under
benchmarks/out/mono_depth_room/ and trained the same way (`cpu` preset, `--downscale 2`, the short
schedule of `clusteringsdf demo`, `--iters` steps, `train --eval`):

* ``sensor``: the true depth, as a depth camera gives it (metric L1 depth loss);
* ``mono``: what `prepare --mono-depth` leaves, simulated from the true depth: each frame's depth
  times a smooth error ``exp(g)``, ``g`` a bicubic upsampling of a 4x3 grid of N(0, ``--error``)
  values (a model's depth is smooth but wrong by tens of percent in places), times a per-frame scale
  ``exp(N(0, error / 2))`` (the fit to the SfM points is not exact); ``prepare.json`` records
  ``depth_source: mono`` (trained with the metric depth loss, as `prepare`'s fitted mono depth is;
  ``--set loss.depth_mode=ssi`` tries the scale-and-shift-invariant one);
* ``points``: what `prepare` leaves for a colour-only capture without a depth model: each
  frame's depth interpolated from its structure-from-motion keypoints (:mod:`.sparse_depth`),
  simulated by 400 random pixels of the true depth per frame (``depth_source: sfm``);
* ``none``: no depth (a colour-only capture); 2000 back-projected true depth pixels of the training
  frames stand in for the SfM points that `prepare` keeps (`points3d.ply`: the scene box).

None of the copies has normal maps. Prints, and writes to benchmarks/out/mono_depth_room_seed<seed>.json, each
variant's held-out PSNR, depth AbsRel against the true depth, PQ, mIoU and the time of training
and evaluation.

    python benchmarks/mono_depth_room.py [--seed 0] [--iters 1000] [--error 0.15] [--variants sensor,mono,points,none] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import OUT, ensure_scene

from clusteringsdf.data import layout
from clusteringsdf.prepare.sparse_depth import interpolate_point_depth

SHORT_SCHEDULE = ["--lr", "0.002", "--set", "train.grid_lr_factor=10"]
SFM_STAND_IN_POINTS = 2000
KEYPOINTS_PER_FRAME = 400


def smooth_error(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """A smooth log-depth error (H, W): a 4x3 grid of N(0, sigma) values, bicubically upsampled."""
    grid = rng.normal(0.0, sigma, size=(3, 4)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC), dtype=np.float32)


def make_variant(source: Path, target: Path, variant: str, error: float, seed: int) -> None:
    """Copy the room into ``target`` and turn its depth into ``variant`` (see the module docstring)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("normal"))
    rng = np.random.default_rng(seed)
    depth_files = sorted((target / "depth").glob("*.png"))
    if variant == "mono":
        for path in depth_files:
            depth = layout.read_depth(path)
            factor = np.exp(smooth_error(rng, *depth.shape, error) + rng.normal(0.0, error / 2))
            layout.write_depth(path, np.where(depth > 0, depth * factor, 0.0))
        (target / layout.PREPARE_FILE).write_text(json.dumps({"depth_source": "mono"}) + "\n")
    elif variant == "points":
        for path in depth_files:
            depth = layout.read_depth(path)
            v, u = np.nonzero(depth > 0)
            pick = rng.choice(v.size, size=min(v.size, KEYPOINTS_PER_FRAME), replace=False)
            keypoints = np.stack([u[pick], v[pick], depth[v[pick], u[pick]]], axis=-1).astype(np.float64)
            layout.write_depth(path, interpolate_point_depth(keypoints, *depth.shape))
        (target / layout.PREPARE_FILE).write_text(json.dumps({"depth_source": "sfm"}) + "\n")
    elif variant == "none":
        k = layout.read_intrinsics(target / layout.INTRINSICS_FILE)
        train = set(layout.read_splits(target / layout.SPLITS_FILE)["train"])
        points = []
        for path in depth_files:
            if path.stem in train:
                depth = layout.read_depth(path)
                pose = layout.read_pose(target / "pose" / f"{path.stem}.txt")
                v, u = np.nonzero(depth > 0)
                pick = rng.choice(v.size, size=min(v.size, SFM_STAND_IN_POINTS // len(train) + 1), replace=False)
                z = depth[v[pick], u[pick]]
                camera = np.stack([(u[pick] - k[0, 2]) / k[0, 0] * z, (v[pick] - k[1, 2]) / k[1, 1] * z, z], axis=-1)
                points.append(camera @ pose[:3, :3].T + pose[:3, 3])
        layout.write_points(target / layout.POINTS_FILE, np.concatenate(points))
        shutil.rmtree(target / "depth")
        (target / layout.PREPARE_FILE).write_text(json.dumps({"depth_source": "none"}) + "\n")


def true_depth_abs_rel(run: Path, truth: Path) -> float | None:
    """AbsRel of the run's rendered test depths (eval/depth/*.png) against the true depth."""
    errors = []
    for rendered in sorted((run / "eval" / "depth").glob("*.png")):
        true = layout.read_depth(truth / "depth" / rendered.name)
        pred = layout.read_depth(rendered)
        if pred.shape != true.shape:  # rendered at the training's resolution
            true = np.asarray(Image.fromarray(true, mode="F").resize(pred.shape[::-1], Image.NEAREST))
        valid = true > 0
        errors.append(np.abs(pred[valid] - true[valid]) / true[valid])
    return round(float(np.mean(np.concatenate(errors))), 4) if errors else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="room seed (default: 0)")
    parser.add_argument("--iters", type=int, default=1000, help="training iterations (default: 1000)")
    parser.add_argument("--error", type=float, default=0.15, help="std of the smooth log-depth error of mono (default: 0.15)")
    parser.add_argument("--variants", default="sensor,mono,points,none")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="more training settings (every variant)")
    parser.add_argument("--name", default="", help="suffix of the run folders and the JSON file")
    args = parser.parse_args()

    room = ensure_scene("room", args.seed, "medium")
    folder = OUT / "mono_depth_room" / f"seed{args.seed}"
    results = {}
    for variant in args.variants.split(","):
        scene, run = folder / variant / "scene", folder / variant / f"run{args.name}"
        make_variant(room, scene, variant, args.error, args.seed)
        start = time.perf_counter()
        command = [sys.executable, "-m", "clusteringsdf", "train", "--data", str(scene), "--out", str(run), "--preset", "cpu",
                   "--iters", str(args.iters), "--downscale", "2", "--eval", "--force", "--quiet", *SHORT_SCHEDULE,
                   *[item for setting in args.set for item in ("--set", setting)]]
        with open(folder / variant / f"log{args.name}.txt", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        results[variant] = {
            "train_and_eval_s": round(time.perf_counter() - start, 1),
            "psnr_test": metrics.get("psnr"), "depth_abs_rel_true": true_depth_abs_rel(run, room),
            "pq": metrics.get("pq"), "miou": metrics.get("miou"),
            "metrics": metrics,
        }
        print(json.dumps({variant: {k: v for k, v in results[variant].items() if k != "metrics"}}), flush=True)
    report = {"seed": args.seed, "iterations": args.iters, "error": args.error, "set": args.set, "variants": results}
    (OUT / f"mono_depth_room_seed{args.seed}{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
