"""Training speed per preset: seconds per iteration, rays/s and network evaluations/s.

"Network evaluations" counts every point passed through the geometry network in an iteration: the
rendered samples, the regulariser points (eikonal / smoothness / collision; evaluated with their
Jacobian, reported separately), the error-bounded sampler's own queries, and the cached-volume
refreshes of the grid sampler (amortised over the measured iterations).

    python benchmarks/train_speed.py [--scene benchmarks/out/scenes/room_medium] [--presets tiny cpu] [--iterations 40]

Prints one JSON object. Scenes are generated on first use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from clusteringsdf.config import preset
from clusteringsdf.training.hooks import SphereOptimisation
from clusteringsdf.training.trainer import Trainer

from _common import ensure_scene


class EvaluationCounter:
    """Wraps SDFField.geometry to count evaluated points (with / without Jacobian)."""

    def __init__(self, field) -> None:
        self.plain = 0
        self.with_jacobian = 0
        self.original = field.geometry

        def counted(points, with_jacobian=False):
            if with_jacobian:
                self.with_jacobian += points.shape[0]
            else:
                self.plain += points.shape[0]
            return self.original(points, with_jacobian)

        field.geometry = counted

    def reset(self) -> None:
        self.plain = self.with_jacobian = 0


class Stopwatch:
    """Accumulates the time spent in wrapped methods."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)


def measure(preset_name: str, scene: Path, iterations: int, warmup: int, overrides: dict, device: str = "cpu") -> dict:
    """Steady-state cost of one training iteration (plus, when sphere-guided, the share of it spent
    in sphere optimisation, guided pixels and ray-sphere interval unions; on CUDA the peak GPU
    memory of the measured steps)."""
    config = preset(preset_name).with_values(
        {"data.labels": "gt", "train.iterations": 10**6, "train.checkpoint_every": 10**6, **overrides}
    )
    folder = Path(tempfile.mkdtemp(prefix="speed_"))
    cuda = device == "cuda"
    try:
        trainer = Trainer(config, scene, folder / "run", torch.device(device), progress=False)
        # steady state: half-way through a long run (sphere radius at r_min, volume refreshed every
        # grid_update_every steps, so 100 measured steps hold exactly one refresh)
        trainer.iteration = config.train.iterations // 2
        counter = EvaluationCounter(trainer.model.field)
        overhead = Stopwatch()
        if trainer.hook(SphereOptimisation) is not None:
            overhead.wrap(trainer.hook(SphereOptimisation), "step")
            overhead.wrap(trainer.model.spheres, "pixels")
            overhead.wrap(trainer.model.spheres, "intervals")
        for _ in range(warmup):
            trainer.step()
        counter.reset()
        overhead.seconds = 0.0
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(iterations):
            trainer.step()
        if cuda:
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / iterations
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rays = config.batch.rays
    evaluations = (counter.plain + counter.with_jacobian) / iterations
    return {
        "preset": preset_name,
        "device": device,
        "overrides": overrides,
        "mode": config.mode,
        "sampler": config.sampler.kind,
        "rays_per_iteration": rays,
        "seconds_per_iteration": round(seconds, 4),
        "iterations_per_second": round(1.0 / seconds, 2),
        "rays_per_second": round(rays / seconds),
        "network_evaluations_per_iteration": round(evaluations),
        "of_which_with_jacobian": round(counter.with_jacobian / iterations),
        "network_evaluations_per_second": round(evaluations / seconds),
        "sphere_overhead_share": round(overhead.seconds / iterations / seconds, 4),
        "peak_gpu_memory_gib": None if peak is None else round(peak, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", type=Path, default=None)
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu", "paper"])
    parser.add_argument("--no-variants", action="store_true", help="only the presets as they are")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = args.scene or ensure_scene("room", 0, "medium")
    runs = [(name, {}) for name in args.presets]
    if "cpu" in args.presets and not args.no_variants:
        runs += [
            ("cpu", {"mode": "panoptic", "data.labels": "m2f"}),  # ClusteringSDF losses
            ("cpu", {"sampler.kind": "error_bounded"}),  # the faithful sampler on the cpu network
            ("cpu", {"sampler.kind": "spheres"}),  # sphere-guided
        ]
    results = []
    for name, overrides in runs:
        slow = name == "paper" or overrides.get("sampler.kind") == "error_bounded"
        iterations = max(3, args.iterations // 10) if slow else args.iterations
        results.append(measure(name, scene, iterations, warmup=min(3 if slow else 10, iterations), overrides=overrides))
    print(json.dumps({"scene": str(scene), "threads": args.threads, "device": "cpu", "results": results}, indent=2))


if __name__ == "__main__":
    main()
