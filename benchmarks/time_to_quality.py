"""Quality versus training time of one configuration on a synthetic room.

Trains in steps of ``--eval-every`` iterations; after each step the test split is rendered and
scored (scoring time is excluded from the training clock). Prints one JSON object with the curve,
the first training time at which all targets hold, and the final scores.

    python benchmarks/time_to_quality.py [--preset cpu] [--labels gt] [--mode objectsdf] \\
        [--iterations 3000] [--eval-every 500] [--set sampler.kind=spheres ...] [--json FILE]

Default targets (the backbone issue): depth AbsRel <= 0.05, PSNR >= 24 dB, PQ^scene >= 0.80.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from clusteringsdf.config import preset
from clusteringsdf.inference.evaluate_run import evaluate_run
from clusteringsdf.training.trainer import Trainer

from _common import ensure_scene

TARGETS = {"depth_abs_rel": ("<=", 0.05), "psnr": (">=", 24.0), "pq": (">=", 0.80)}


def meets(scores: dict) -> bool:
    for key, (op, bound) in TARGETS.items():
        value = scores.get(key)
        if value is None or (op == "<=" and value > bound) or (op == ">=" and value < bound):
            return False
    return True


def run(args: argparse.Namespace) -> dict:
    config = preset(args.preset).with_values({"mode": args.mode, "data.labels": args.labels, "train.iterations": args.iterations})
    config = config.with_text_values(args.set)
    scene = args.scene or ensure_scene("room", args.seed, args.noise)
    folder = Path(tempfile.mkdtemp(prefix="quality_"))
    curve = []
    try:
        trainer = Trainer(config, scene, folder / "run", torch.device("cpu"), progress=False)
        while trainer.iteration < config.train.iterations:
            trainer.train(iterations=args.eval_every)
            scores = evaluate_run(folder / "run", torch.device("cpu"), trained=trainer.trained_run(), progress=False, mesh_resolution=0)
            row = {"iteration": trainer.iteration, "train_seconds": round(trainer.elapsed, 1)}
            row.update({k: scores.get(k) for k in ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "psnr", "depth_abs_rel")})
            row["render_seconds"] = scores.get("render_seconds")
            curve.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    reached = next((row for row in curve if meets(row)), None)
    return {
        "scene": str(scene),
        "preset": args.preset,
        "mode": args.mode,
        "labels": args.labels,
        "overrides": args.set,
        "targets": {k: f"{op} {bound}" for k, (op, bound) in TARGETS.items()},
        "time_to_targets_seconds": None if reached is None else reached["train_seconds"],
        "iteration_at_targets": None if reached is None else reached["iteration"],
        "final": curve[-1] if curve else None,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", default="medium")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--mode", default="objectsdf")
    parser.add_argument("--labels", default="gt")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. sampler.kind=spheres")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
