"""Where a training step's time goes: the phases of ``Trainer.step`` (hooks, batch building, the
model's forward pass with its sampler and field evaluations, each loss term, backward, optimiser),
measured on a scene at mid-run, plus the heaviest operators of the whole step from torch's profiler.

    python benchmarks/step_profile.py [--scene benchmarks/out/scenes/room_medium] [--preset cpu] [--steps 60] [--set KEY=VALUE ...]

Prints one JSON object: seconds per step, and per phase its seconds per step and share. Nested
phases (the sampler and field evaluations inside the forward pass, the geometry network inside the
regulariser terms) are listed with a ``forward/`` or ``terms/`` prefix and are part of their parent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

from clusteringsdf.config import preset
from clusteringsdf.losses import clustering, geometry, reconstruction, segmentation
from clusteringsdf.methods import weighted_total
from clusteringsdf.training.trainer import Trainer

from _common import ensure_scene


class Clock:
    """Accumulated seconds per phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth = 0

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        clock = self

        def timed(*args, **kwargs):
            with clock.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(trainer: Trainer, clock: Clock) -> None:
    """Time the nested phases: sampler, geometry network (plain and with Jacobian), colour network,
    and every loss function the methods call."""
    model = trainer.model
    clock.wrap(model, "sample", "forward/sampler")
    field = model.field
    original_geometry = field.geometry

    def geometry_timed(points, with_jacobian=False):
        with clock.phase("geometry network (with Jacobian)" if with_jacobian else "geometry network"):
            return original_geometry(points, with_jacobian)

    field.geometry = geometry_timed
    clock.wrap(field, "color", "colour network")
    for module in (clustering, geometry, reconstruction, segmentation):  # every public loss function
        for name in dir(module):
            value = getattr(module, name)
            if not name.startswith("_") and callable(value) and getattr(value, "__module__", "") == module.__name__ and not isinstance(value, type):
                clock.wrap(module, name, f"terms/{name}")


def step(trainer: Trainer, clock: Clock) -> None:
    """One ``Trainer.step`` with its phases timed (the same calls in the same order)."""
    with clock.phase("hooks before"):
        for hook in trainer.hooks:
            hook.before_step(trainer.iteration)
    progress = trainer.iteration / max(trainer.config.train.iterations, 1)
    with clock.phase("batch"):
        rays = trainer.batches.next(trainer.iteration)
    with clock.phase("forward"):
        out = trainer.model(rays, trainer.request, train=True, generator=trainer.generator)
    with clock.phase("terms"):
        terms = trainer.method.loss_terms(trainer.model, out, rays, progress, generator=trainer.generator)
        total = weighted_total(terms)
    with clock.phase("backward"):
        trainer.optimizer.zero_grad(set_to_none=True)
        total.backward()
    with clock.phase("optimiser"):
        trainer.optimizer.step()
        trainer.scheduler.step()
    with clock.phase("hooks after"):
        for hook in trainer.hooks:
            hook.after_step(trainer.iteration, rays, out)
    trainer.iteration += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--operators", type=int, default=15, help="heaviest operators to list (torch profiler over 10 steps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = args.scene or ensure_scene("room", 0, "medium")
    config = preset(args.preset).with_text_values(args.set).with_values({"train.checkpoint_every": 10**6})
    folder = Path(tempfile.mkdtemp(prefix="profile_"))
    try:
        trainer = Trainer(config, scene, folder / "run", torch.device("cpu"), progress=False)
        trainer.iteration = config.train.iterations // 2  # mid-run: one volume refresh per grid_update_every steps
        for _ in range(10):
            trainer.step()
        clock = Clock()
        instrument(trainer, clock)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(trainer, clock)
        seconds = (time.perf_counter() - start) / args.steps
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(10):
                trainer.step()
        operators = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[: args.operators]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    phases = {name: {"seconds": round(total / args.steps, 4), "share": round(total / args.steps / seconds, 3)}
              for name, total in sorted(clock.seconds.items(), key=lambda item: -item[1])}
    print(json.dumps({
        "scene": str(scene), "preset": args.preset, "set": args.set, "threads": args.threads, "steps": args.steps,
        "mode": config.mode, "rays": config.batch.rays, "seconds_per_step": round(seconds, 4), "phases": phases,
        "operators_self_ms_per_step": {e.key: round(e.self_cpu_time_total / 1000 / 10, 2) for e in operators},
    }, indent=2))


if __name__ == "__main__":
    main()
