"""The training loop: optimiser and schedules, checkpoints, resume, logging, interruption.

Resuming is exact: the model, optimiser, scheduler, the sampling generator and the cached sampler
volume are all checkpointed, so a run killed and resumed from iteration k continues exactly as an
uninterrupted run (on the same device and thread count). Ctrl-C / SIGTERM save a checkpoint before
exiting; ``kill -9`` loses at most ``checkpoint_every`` iterations.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data.scene import Scene, load_scene
from ..errors import RunError
from ..model.renderer import Renderer, RenderRequest, build_renderer
from ..losses.contrastive import ema_update
from ..sampling import pixels
from ..sampling.frames import FrameStore
from . import objectives
from .spheres import SphereTrainer
from .run_folder import (
    METRICS_FILE,
    latest_checkpoint,
    load_checkpoint,
    prepare_run_folder,
    run_identity,
    save_checkpoint,
)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available to PyTorch")
    if name not in ("cpu", "cuda"):
        raise RunError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    return torch.device(name)


def make_optimizer(renderer: Renderer, config: Config) -> torch.optim.Optimizer:
    """Adam (0.9, 0.99, eps 1e-15): hash grid at ``grid_lr_factor`` x lr, the rest at lr."""
    grid, rest = renderer.field.parameter_groups()
    groups = [
        {"params": grid, "lr": config.train.lr * config.train.grid_lr_factor},
        {"params": rest + list(renderer.density.parameters()), "lr": config.train.lr},
    ]
    kwargs: dict[str, Any] = {"betas": (0.9, 0.99), "eps": 1e-15}
    try:
        return torch.optim.Adam(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, **kwargs)


def initial_object_radius(scene: Scene, config: Config) -> float:
    """Object channels start as one sphere at the origin that holds no camera: half the closest
    camera's distance to the origin, at most half the background radius, at least 0.02."""
    closest = float(np.linalg.norm(scene.poses[:, :3, 3], axis=-1).min())
    return float(np.clip(0.5 * closest, 0.02, 0.5 * config.field.init_radius))


@dataclass
class TrainResult:
    iterations: int
    seconds: float
    interrupted: bool = False


class Trainer:
    """Owns a run: scene, renderer, optimiser, schedules and the run folder.

    Args:
        config: the run's configuration.
        scene_path: scene folder (Panoptic Lifting layout).
        run_dir: run folder.
        device: torch device.
        resume: continue the run in ``run_dir``.
        force: replace a different run in ``run_dir`` (the old one is moved aside).
        scene: an already loaded scene (avoids reading it twice).
        progress: show a progress bar.
    """

    def __init__(
        self,
        config: Config,
        scene_path: Path,
        run_dir: Path,
        device: torch.device,
        resume: bool = False,
        force: bool = False,
        scene: Scene | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.show_progress = progress
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        self.scene = scene if scene is not None else load_scene(scene_path, downscale=config.data.downscale)
        if config.mode == "semantic" and config.field.channels < self.scene.classes.num_classes:
            config.field.channels = self.scene.classes.num_classes  # one channel per class
        resumed = prepare_run_folder(self.run_dir, run_identity(config, scene_path), resume, force)

        torch.manual_seed(config.train.seed)
        bbox = torch.as_tensor(self.scene.bbox)
        self.renderer = build_renderer(config, bbox, self.scene.classes.num_classes, initial_object_radius(self.scene, config)).to(device)
        self.store = FrameStore(self.scene, device, config.data.labels, config.field.channels, config.train.seed, config.mode)
        self.clustered = config.mode != "objectsdf"
        if self.clustered:
            self.label_index = pixels.index_labels(self.store.channel)
            self.keyframes = pixels.keyframes(self.label_index, self.store.train_frames, config.clustering.keyframe_fraction)
        self.optimizer = make_optimizer(self.renderer, config)
        gamma = config.train.lr_final_factor ** (1.0 / max(config.train.iterations, 1))
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.train.seed)
        self.spheres = None
        if self.renderer.spheres is not None:
            self.spheres = SphereTrainer(self.renderer.spheres, self.renderer.field, config.spheres, config.train.iterations, self.generator)
        self.iteration = 0
        self.elapsed = 0.0
        self.last_volume_refresh = -(10**9)
        self.request = RenderRequest(
            normals=self.store.normals is not None and (config.loss.normal_l1 > 0 or config.loss.normal_cos > 0),
            opacity=config.mode != "contrastive",
            semantics=config.mode in ("objectsdf", "panoptic", "contrastive"),
            embedding=config.mode == "contrastive",
            surface_points=True,
        )
        self._stop_signal: int | None = None
        if resumed:
            path = latest_checkpoint(self.run_dir)
            self.load_state_dict(load_checkpoint(path, device))
            print(f"resuming {self.run_dir} from iteration {self.iteration} ({path.name})")

    # ------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "model": self.renderer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "volume": self.renderer.volume.state(),
            "last_volume_refresh": self.last_volume_refresh,
            "config": self.config.to_dict(),
            "spheres": None if self.spheres is None else self.spheres.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.renderer.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu() if self.device.type == "cpu" else state["generator"])
        self.renderer.volume.load_state(state["volume"])
        self.last_volume_refresh = int(state["last_volume_refresh"])
        if self.spheres is not None:
            self.spheres.load_state_dict(state["spheres"])

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.iteration, self.state_dict())

    # ------------------------------------------------------------------------------------- step

    def _maybe_refresh_volume(self) -> None:
        """Refresh the sampler's cached SDF volume: often while the geometry forms, then every N steps."""
        every = self.config.sampler.grid_update_every
        interval = min(every, max(10, self.iteration // 4))
        if self.renderer.volume.values is None or self.iteration - self.last_volume_refresh >= interval:
            self.renderer.refresh_volume()
            self.last_volume_refresh = self.iteration

    def batch(self):
        """Rays of ``frames_per_batch`` train frames. Each frame contributes random pixels, or after
        the warm-up of a sphere-guided run, pixels where the spheres project; in the clustering
        modes half of each frame's rays are label-comprehensive and frames are chosen with key-frame
        substitution."""
        cfg = self.config.train
        store = self.store
        count = max(1, min(cfg.frames_per_batch, len(store.train_frames)))
        if self.clustered:
            c = self.config.clustering
            frames = pixels.choose_frames(self.label_index, store.train_frames, self.keyframes, count, c.keyframe_probability, self.generator)
        else:
            frames = store.train_frames[torch.randint(0, len(store.train_frames), (count,), device=self.device, generator=self.generator)]
        per_frame = max(2, cfg.rays // count)
        free = per_frame // 2 if self.clustered else per_frame
        frame, pixel = pixels.random_pixels(frames, free, store.height * store.width, self.generator)
        if self.spheres is not None and self.spheres.active(self.iteration):
            # guided_fraction of each frame's pixels where the spheres project, the rest uniform (so
            # surface the cloud does not cover yet still gets rays); frames where fewer spheres
            # are visible keep more of their uniform pixels
            want = round(free * self.config.spheres.guided_fraction)
            kept = []
            for i, f in enumerate(frames.tolist()):
                v, u = self.renderer.spheres.pixels(store.poses[f], store.intrinsics[f], (store.height, store.width), want, self.generator)
                kept.append(torch.cat([v * store.width + u, pixel[i * free : (i + 1) * free]])[:free])
            pixel = torch.stack(kept).reshape(-1)
        if self.clustered:
            label_frame, label_pixel = pixels.label_comprehensive_pixels(self.label_index, frames, per_frame - free, self.generator)
            frame, pixel = torch.cat([frame, label_frame]), torch.cat([pixel, label_pixel])
        return store.rays(frame, pixel // store.width, pixel % store.width, self.config.sampler.near)

    def loss_terms(self) -> dict[str, torch.Tensor]:
        progress = self.iteration / max(self.config.train.iterations, 1)
        rays = self.batch()
        out = self.renderer(rays, self.request, train=True, generator=self.generator)
        if "opacity" in out:
            self.renderer.vote(out["opacity"], rays.semantic, rays.confidence, self.config.loss.vote_decay)
        terms = objectives.reconstruction_terms(out, rays, self.config)
        terms.update(objectives.geometry_terms(self.renderer, out, self.config, progress, self.generator))
        terms.update(objectives.mode_terms(out, rays, self.config))
        return terms

    def step(self) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the (detached) loss terms and the total."""
        if self.config.sampler.kind != "error_bounded":
            self._maybe_refresh_volume()
        terms = self.loss_terms()
        total = objectives.weighted_total(terms, self.config)
        if not bool(torch.isfinite(total)):
            bad = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise RunError(
                f"loss became non-finite at iteration {self.iteration + 1} ({bad}); the last good checkpoint in "
                f"{self.run_dir / 'checkpoints'} is kept; lower --lr or check the scene data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.spheres is not None:
            self.spheres.step(self.iteration)
        if self.config.mode == "contrastive":
            ema_update(self.renderer.slow_embedding_head, self.renderer.field.embedding_head)
        self.iteration += 1
        terms = {k: v.detach() for k, v in terms.items()}
        terms["total"] = total.detach()
        return terms

    # ------------------------------------------------------------------------------------- loop

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_signal = signum

    def train(self, iterations: int | None = None) -> TrainResult:
        """Train until ``config.train.iterations``, or for at most ``iterations`` more steps (tests and
        benchmarks; checkpoints still follow ``checkpoint_every`` only, like a run that is killed)."""
        target = self.config.train.iterations if iterations is None else min(self.config.train.iterations, self.iteration + iterations)
        cfg = self.config.train
        writer = _TensorBoard(self.run_dir / "tb")
        metrics = (self.run_dir / METRICS_FILE).open("a")
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._on_signal)
        bar = _progress_bar(self.iteration, self.config.train.iterations, self.show_progress)
        start = time.perf_counter()
        start_elapsed = self.elapsed
        interrupted = False
        try:
            while self.iteration < target:
                terms = self.step()
                self.elapsed = start_elapsed + time.perf_counter() - start
                if self.iteration % cfg.log_every == 0 or self.iteration == target:
                    values = {k: float(v) for k, v in terms.items()}
                    values["beta"] = float(self.renderer.density.beta.detach())
                    values["lr"] = self.optimizer.param_groups[1]["lr"]
                    record = {"iteration": self.iteration, "seconds": round(self.elapsed, 3), **values}
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    writer.scalars(values, self.iteration)
                    bar.set_postfix(loss=f"{values['total']:.4f}", rgb=f"{values['rgb']:.4f}", beta=f"{values['beta']:.4f}")
                bar.update(1)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self.save()
                if self._stop_signal is not None:
                    self.save()
                    interrupted = True
                    name = "Ctrl-C" if self._stop_signal == signal.SIGINT else "SIGTERM"
                    print(f"\n{name}: stopped at iteration {self.iteration}; checkpoint saved. Continue with --resume.", file=sys.stderr)
                    break
        finally:
            bar.close()
            metrics.close()
            writer.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return TrainResult(self.iteration, self.elapsed, interrupted)

    @property
    def stop_signal(self) -> int | None:
        return self._stop_signal


class _TensorBoard:
    """TensorBoard scalars when the package is importable; silently absent otherwise."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))
        except Exception:  # noqa: BLE001 - tensorboard is optional at run time
            self.writer = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            if math.isfinite(value):
                self.writer.add_scalar(f"train/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _progress_bar(start: int, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=start,
        disable=not enabled,
        dynamic_ncols=True,
        unit="it",
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        file=sys.stderr,
    )
