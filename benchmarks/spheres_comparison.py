"""Sphere-guided training on vs off at equal wall-clock on the synthetic room (2 CPU threads).

1. Probe (per sampler): seconds per iteration at start-up, used only to plan the iteration count.
2. Curves: each sampler trains for the same training-time budget (budget / probed seconds per
   iteration; a run whose training time misses the budget by more than 5% is planned again from
   its own pace). The test split is rendered and scored at a few points along the way (scoring
   time is not training time). Inside each run, per segment between those points: seconds and
   geometry-network evaluations per iteration, the sphere cloud's overhead (sphere optimisation,
   guided pixel selection, ray-sphere interval unions) as a share of training time, and the share
   of rays that fall back to the grid sampler.

Writes benchmarks/out/results/spheres.json and docs/images/spheres_quality_vs_time.png; prints the JSON.

    python benchmarks/spheres_comparison.py [--budget 300] [--points 3] [--mode objectsdf --labels gt]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from clusteringsdf.config import preset
from clusteringsdf.inference.evaluate_run import evaluate_run
from clusteringsdf.training.hooks import SphereOptimisation
from clusteringsdf.training.trainer import Trainer

from _common import OUT, ensure_scene
from train_speed import EvaluationCounter, Stopwatch, measure

CPU = torch.device("cpu")
SAMPLERS = ("grid", "spheres")
KEYS = ("pq", "sq", "rq", "miou", "psnr", "depth_abs_rel")
PLOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "spheres_quality_vs_time.png"


def make_config(kind: str, mode: str, labels: str, iterations: int):
    return preset("cpu").with_values({"mode": mode, "data.labels": labels, "sampler.kind": kind, "train.iterations": iterations})


def probe(kind: str, scene: Path, mode: str, labels: str) -> dict:
    """Steady-state cost of one iteration (train_speed.measure: half-way through a run, 100 steps)."""
    measured = measure("cpu", scene, 100, 10, {"mode": mode, "data.labels": labels, "sampler.kind": kind})
    return {
        "seconds_per_iteration": measured["seconds_per_iteration"],
        "network_evaluations_per_iteration": measured["network_evaluations_per_iteration"],
        "regulariser_evaluations_per_iteration": measured["of_which_with_jacobian"],
        "rendering_evaluations_per_iteration": measured["network_evaluations_per_iteration"] - measured["of_which_with_jacobian"],
        "sphere_overhead_share": measured["sphere_overhead_share"],
    }


class FallbackShare:
    """Mean share of training rays that the sphere sampler hands to the grid sampler."""

    def __init__(self, sampler) -> None:
        self.total = 0.0
        self.calls = 0
        original = sampler.sample

        def counted(rays, beta, train, generator):
            out = original(rays, beta, train, generator)
            if train:
                self.total += sampler.last_miss_fraction
                self.calls += 1
            return out

        sampler.sample = counted


def curve(kind: str, scene: Path, mode: str, labels: str, iterations: int, points: int) -> tuple[list[dict], dict]:
    """Quality along one training run, and the run's own cost figures over each segment between
    evaluation points (seconds and network evaluations per iteration, sphere overhead share, share
    of rays falling back to the grid sampler); rendering for the evaluations is not counted."""
    run = OUT / "runs" / f"spheres_{kind}_{mode}_{labels}"
    shutil.rmtree(run, ignore_errors=True)
    trainer = Trainer(make_config(kind, mode, labels, iterations), scene, run, CPU, progress=False)
    counter = EvaluationCounter(trainer.model.field)
    overhead = Stopwatch()
    fallback = None
    if trainer.hook(SphereOptimisation) is not None:
        overhead.wrap(trainer.hook(SphereOptimisation), "step")
        overhead.wrap(trainer.model.spheres, "pixels")
        overhead.wrap(trainer.model.spheres, "intervals")
        fallback = FallbackShare(trainer.model.train_sampler)
    rows, segments = [], []
    marks = [round(iterations * (i + 1) / points) for i in range(points)]
    for mark in marks:
        start = (trainer.iteration, trainer.elapsed, counter.plain + counter.with_jacobian, overhead.seconds)
        fallback_start = (fallback.total, fallback.calls) if fallback else (0.0, 0)
        trainer.train(iterations=mark - trainer.iteration)
        steps, seconds = trainer.iteration - start[0], trainer.elapsed - start[1]
        segments.append({
            "iterations": [start[0], trainer.iteration],
            "seconds_per_iteration": round(seconds / steps, 4),
            "network_evaluations_per_iteration": round((counter.plain + counter.with_jacobian - start[2]) / steps),
            "sphere_overhead_share": round((overhead.seconds - start[3]) / seconds, 4),
            "fallback_ray_share": round((fallback.total - fallback_start[0]) / max(1, fallback.calls - fallback_start[1]), 4) if fallback else None,
        })
        saved = (counter.plain, counter.with_jacobian, overhead.seconds)
        scores = evaluate_run(run, CPU, trained=trainer.trained_run(), progress=False, out_dir=run / f"eval_{mark}", mesh_resolution=0)
        counter.plain, counter.with_jacobian, overhead.seconds = saved  # evaluation rendering is not training
        row = {"iteration": trainer.iteration, "train_seconds": round(trainer.elapsed, 1)}
        row.update({k: scores.get(k) for k in KEYS})
        row["render_seconds"] = scores.get("render_seconds")
        rows.append(row)
        print(f"[{kind}] {json.dumps(row)} {json.dumps(segments[-1])}", file=sys.stderr, flush=True)
    return rows, {"segments": segments, "sphere_overhead_share": round(overhead.seconds / max(trainer.elapsed, 1e-9), 4)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for kind in SAMPLERS:
        rows = results["curves"][kind]
        seconds = [r["train_seconds"] for r in rows]
        label = "spheres on" if kind == "spheres" else "spheres off (grid sampler)"
        for axis, key, title in zip(axes, ("pq", "psnr", "depth_abs_rel"), ("PQ (scene)", "PSNR (dB)", "depth AbsRel")):
            axis.plot(seconds, [r[key] for r in rows], marker="o", label=label)
            axis.set_title(title)
            axis.set_xlabel("training seconds (2 CPU threads)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per sampler")
    parser.add_argument("--points", type=int, default=3, help="evaluations along each curve")
    parser.add_argument("--mode", default="objectsdf")
    parser.add_argument("--labels", default="gt")
    parser.add_argument("--noise", default="medium")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = ensure_scene("room", 0, args.noise)
    path = OUT / "results" / "spheres.json"
    results: dict = {"scene": str(scene), "mode": args.mode, "labels": args.labels, "budget_seconds": args.budget, "probe": {}, "curves": {}}
    for kind in SAMPLERS:
        results["probe"][kind] = probe(kind, scene, args.mode, args.labels)
        print(f"[{kind}] probe {json.dumps(results['probe'][kind])}", file=sys.stderr, flush=True)
    for kind in SAMPLERS:
        iterations = max(50, int(args.budget / results["probe"][kind]["seconds_per_iteration"]) // 10 * 10)
        rows, cost = curve(kind, scene, args.mode, args.labels, iterations, args.points)
        seconds = rows[-1]["train_seconds"]
        if abs(seconds - args.budget) > 0.05 * args.budget:
            # the probe starts from an untrained field and an unconverged cloud; plan again from
            # this run's own pace so that both samplers really get the same training time
            print(f"[{kind}] {seconds:.0f} s instead of {args.budget:.0f} s: training again", file=sys.stderr, flush=True)
            iterations = max(50, int(args.budget * iterations / seconds) // 10 * 10)
            rows, cost = curve(kind, scene, args.mode, args.labels, iterations, args.points)
        results["curves"][kind], results.setdefault("run_cost", {})[kind] = rows, cost
    # evaluations per iteration in the last segment of each real run (cloud on the surface, radius at r_min)
    last = {kind: results["run_cost"][kind]["segments"][-1]["network_evaluations_per_iteration"] for kind in SAMPLERS}
    results["evaluations_ratio_off_over_on"] = round(last["grid"] / last["spheres"], 2)
    final = {kind: results["curves"][kind][-1] for kind in SAMPLERS}
    results["spheres_at_least_as_good"] = {
        "pq": final["spheres"]["pq"] >= final["grid"]["pq"],
        "psnr": final["spheres"]["psnr"] >= final["grid"]["psnr"],
        "depth_abs_rel": final["spheres"]["depth_abs_rel"] <= final["grid"]["depth_abs_rel"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, PLOT)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
