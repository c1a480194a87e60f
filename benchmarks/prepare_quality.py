"""Does a run trained on a prepared capture separate the room's things as well as one on true poses?

On the textured synthetic capture (100 frames at 320x240, colour + depth, written by
benchmarks/prepare_speed.py's helper), two scenes are prepared with the `classical` segmenter (no
classes): one with poses from `prepare` (structure-from-motion, metric through depth), one with the
true poses imported (`--poses scannet`). Each is trained in instance mode (`cpu` preset), its test
views are rendered (instance mode: each pixel takes its object channel's voted class, "object" or
"background", and object channels are the instances) and scored class-agnostically against the
capture's ground truth (every thing instance is an "object"). Prints JSON and writes
benchmarks/out/results/prepare_quality.json.

    python benchmarks/prepare_quality.py [--iters N]   # two trainings: ~2 x 16 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from _common import OUT
from prepare_speed import capture

from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.prepare import PrepareOptions, prepare_scene


def cli(*args: str) -> None:
    command = [sys.executable, "-m", "clusteringsdf.cli", *args]
    print("$ clusteringsdf " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, help="training iterations (default: the cpu preset's)")
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    root, _, _, _ = capture("textured", args.frames, 320, 240)
    results = {}
    for name, poses in (("prepared_poses", {}), ("true_poses", {"poses": "scannet", "poses_path": root})):
        scene = OUT / "prepared" / f"quality_{name}"
        run = OUT / "runs" / f"quality_{name}"
        shutil.rmtree(scene, ignore_errors=True)
        start = time.perf_counter()
        prepared = prepare_scene(PrepareOptions(out=scene, images=root / "color", depth=root / "depth", **poses),
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
        prepare_seconds = time.perf_counter() - start
        start = time.perf_counter()
        train = ["train", "--data", str(scene), "--out", str(run), "--preset", "cpu", "--mode", "instance", "--force", "--quiet"]
        cli(*train, *(["--iters", str(args.iters)] if args.iters else []))
        train_seconds = time.perf_counter() - start
        cli("render", "--run", str(run), "--out", str(run / "render_test"), "--quiet")
        scores = evaluate_predictions(root, run / "render_test", class_agnostic=True)
        results[name] = {
            "pose_source": prepared.pose_source,
            "prepare_s": round(prepare_seconds, 1),
            "train_s": round(train_seconds, 1),
            "class_agnostic_pq_things": scores["pq_things"],
            "class_agnostic_pq": scores["pq"],
            "object_background_miou": scores["miou"],
            "test_frames": scores["frames"],
        }
    machine = evaluate_predictions(root, OUT / "prepared" / "quality_true_poses", use_machine_labels=True, class_agnostic=True)
    results["classical_masks_2d"] = {"class_agnostic_pq_things": machine["pq_things"], "note": "the per-frame masks themselves (scene-level PQ)"}
    output = {"capture": str(root), "iterations": args.iters or "cpu preset", "results": results}
    path = OUT / "results" / "prepare_quality.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output, indent=1) + "\n")
    print(json.dumps(output, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
