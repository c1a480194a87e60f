"""The training loop: optimiser and schedules, checkpoints, resume, logging, interruption.

The loop knows no feature by name: the method supplies the per-pixel targets, render requests and
loss terms, and the training hooks (:mod:`.hooks`: cached-volume refresh, sphere optimisation,
channel votes, ...) run before and after each optimiser step on their own schedules.

Resuming is exact: the model (with its cached sampler volume), the method's state, the optimiser,
the scheduler, the sampling generator and every hook's state are checkpointed, so a run killed and
resumed from iteration k continues exactly as an uninterrupted run (on the same device and thread
count).
Ctrl-C / SIGTERM save a checkpoint before exiting; ``kill -9`` loses at most ``checkpoint_every``
iterations.
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

import torch

from ..config import Config, TrainConfig
from ..data.scene import Scene
from ..errors import RunError
from ..files import write_json_atomic
from ..methods import channel_sharing_note, weighted_total
from ..model import Model
from ..runs.folder import CONFIG_FILE, METRICS_FILE, latest_checkpoint, load_checkpoint, prepare_run_folder, run_identity, save_checkpoint
from ..runs.scene_record import read_scene_record, write_scene_record
from ..runs.trained import CHECKPOINT_FORMAT, TrainedRun, build_model_and_method, load_run_scene, load_states
from ..sampling.batches import BatchBuilder
from ..sampling.frames import FrameStore, LabelMaps, training_labels
from .hooks import HookContext, TrainingHook, attach_hooks


def make_optimizer(model: Model, config: Config) -> torch.optim.Optimizer:
    """Adam (0.9, 0.99, eps 1e-15): hash grid at ``grid_lr_factor`` x lr, the rest at lr."""
    grid, rest = model.field.parameter_groups()
    groups = [
        {"params": grid, "lr": config.train.lr * config.train.grid_lr_factor},
        {"params": rest + list(model.density.parameters()), "lr": config.train.lr},
    ]
    kwargs: dict[str, Any] = {"betas": (0.9, 0.99), "eps": 1e-15}
    try:
        return torch.optim.Adam(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, **kwargs)


def training_components(config: Config) -> set[str]:
    """What training reads of a scene: colour, depth, the label source, normals only when
    supervised (the other parts are not held in memory)."""
    components = {"color", "depth", config.data.labels}
    if config.loss.normal_l1 > 0 or config.loss.normal_cos > 0:
        components.add("normal")
    return components


BUDGET_TIMING_START = 5  # a run trained by time times its steps from here (the first ones refresh the volume often)
BUDGET_TIMED_STEPS = 20  # and sets a first length after this many
# then the pace of every further this many steps corrects the length: the first steps are slower than
# the rest (a length set from them alone left 30% of a 3-minute budget unused on the room)
BUDGET_RETIMED_STEPS = 100


@dataclass
class TrainResult:
    iterations: int
    seconds: float
    interrupted: bool = False


class Trainer:
    """Owns a run: scene, model, method, optimiser, schedules and the run folder.

    Args:
        config: the run's configuration.
        scene_path: scene folder (Panoptic Lifting layout).
        run_dir: run folder.
        device: torch device.
        resume: continue the run in ``run_dir``.
        force: replace a different run in ``run_dir`` (the old one is moved aside).
        scene: an already loaded scene (avoids reading it twice).
        labels: the scene's training labels when already built (avoids joining its masks twice).
        progress: show a progress bar.
    """

    def __init__(
        self,
        config: Config,
        scene_path: Path,
        run_dir: Path,
        device: torch.device,
        *,
        resume: bool = False,
        force: bool = False,
        scene: Scene | None = None,
        labels: LabelMaps | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.scene_path = Path(scene_path)
        self.device = device
        self.show_progress = progress
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        self.scene = scene if scene is not None else load_run_scene(config, scene_path, training_components(config))
        resumed = prepare_run_folder(self.run_dir, run_identity(config, scene_path), resume, force)
        write_scene_record(self.run_dir, self.scene)

        torch.manual_seed(config.train.seed)
        self.model, self.method = build_model_and_method(config, self.scene, device)
        if labels is None:
            labels = training_labels(self.scene, config.data.labels, config.clustering.join_masks, notes=True)
        self.store = FrameStore(self.scene, device, self.method.pixel_targets(self.scene, labels))
        self.optimizer = make_optimizer(self.model, config)
        gamma = config.train.lr_final_factor ** (1.0 / max(config.train.iterations, 1))
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.train.seed)
        self.batches = BatchBuilder(
            self.store, config.batch, config.sampler.near, self.generator, label_comprehensive=self.method.label_comprehensive
        )
        self.hooks: list[TrainingHook] = attach_hooks(HookContext(config, self.model, self.method, self.batches, self.generator))
        self.warnings: list[str] = []  # the hooks' warnings not yet printed and logged
        self.iteration = 0
        self.elapsed = 0.0
        self.length_fixed = config.train.minutes == 0  # a run trained by time learns its length from its first steps
        self._timed_from: tuple[int, float] | None = None  # (iteration, elapsed) where timing those steps began
        self._length_set = False  # a run trained by time has a first length
        normal_supervision = self.store.normals is not None and (config.loss.normal_l1 > 0 or config.loss.normal_cos > 0)
        self.request = self.method.training_request(normals=normal_supervision)
        self._stop_signal: int | None = None
        if resumed:
            path = latest_checkpoint(self.run_dir)
            self.load_state_dict(load_checkpoint(path, device), path)
            print(f"resuming {self.run_dir} from iteration {self.iteration} ({path.name})")

    # ------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "hooks": {hook.name: hook.state_dict() for hook in self.hooks},
            "length_fixed": self.length_fixed,
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        state = load_states(self.model, self.method, state, path)
        self.iteration = int(state["iteration"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu() if self.device.type == "cpu" else state["generator"])
        self.length_fixed = bool(state.get("length_fixed", True))
        hook_states = _hook_states(state)
        for hook in self.hooks:
            if hook.name in hook_states:  # a hook the checkpoint does not know starts afresh
                hook.load_state_dict(hook_states[hook.name])

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.iteration, self.state_dict())

    def hook(self, hook_class: type[TrainingHook]) -> TrainingHook | None:
        """The run's hook of that class, None when the run does not use it."""
        return next((hook for hook in self.hooks if isinstance(hook, hook_class)), None)

    def trained_run(self) -> TrainedRun:
        """The run as inference code sees it (the same model and method objects)."""
        return TrainedRun(self.run_dir, self.config, self.scene, self.model, self.method, self.iteration, record=read_scene_record(self.run_dir))

    # ------------------------------------------------------------------------------------- step

    def step(self) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the (detached, unweighted) loss terms and the total."""
        for hook in self.hooks:
            hook.before_step(self.iteration)
        progress = self.iteration / max(self.config.train.iterations, 1)
        rays = self.batches.next(self.iteration)
        out = self.model(rays, self.request, train=True, generator=self.generator)
        terms = self.method.loss_terms(self.model, out, rays, progress, generator=self.generator)
        total = weighted_total(terms)
        if not bool(torch.isfinite(total)):
            bad = ", ".join(f"{k}={float(t.value.detach()):.4g}" for k, t in terms.items())
            raise RunError(
                f"loss became non-finite at iteration {self.iteration + 1} ({bad}); the last good checkpoint in "
                f"{self.run_dir / 'checkpoints'} is kept; lower --lr (now {self.config.train.lr:g}) or check the scene data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        for hook in self.hooks:
            hook.after_step(self.iteration, rays, out)
            self.warnings.extend(hook.take_warnings())
        self.iteration += 1
        values = {name: term.value.detach() for name, term in terms.items()}
        values["total"] = total.detach()
        return values

    # ------------------------------------------------------------------------------------- loop

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_signal = signum

    def train(self, iterations: int | None = None) -> TrainResult:
        """Train until ``config.train.iterations`` (for a run trained by time, until the length its
        first steps set), or for at most ``iterations`` more steps (tests and benchmarks;
        checkpoints still follow ``checkpoint_every`` only, like a run that is killed)."""
        limit = math.inf if iterations is None else self.iteration + iterations
        writer = _TensorBoard(self.run_dir / "tb")
        metrics = (self.run_dir / METRICS_FILE).open("a")
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._on_signal)
        bar = _progress_bar(self.iteration, self.config.train.iterations, self.show_progress)
        start, start_elapsed = time.perf_counter(), self.elapsed
        interrupted = False
        try:
            while self.iteration < min(self.config.train.iterations, limit):
                terms = self.step()
                self.elapsed = start_elapsed + time.perf_counter() - start
                self._follow_budget()
                self._warn(metrics, writer, bar)
                last = self.iteration == self.config.train.iterations
                if self.iteration % self.config.train.log_every == 0 or last:
                    self._log(terms, metrics, writer, bar)
                _advance(bar, self.config.train, self.elapsed)
                if self.iteration % self.config.train.checkpoint_every == 0 or last:
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
        note = channel_sharing_note(self.method.votes.usage())
        if note and self.iteration == self.config.train.iterations:
            print(f"note: {note}", file=sys.stderr)
        return TrainResult(self.iteration, self.elapsed, interrupted)

    def _log(self, terms: dict[str, torch.Tensor], metrics, writer: "_TensorBoard", bar) -> None:
        """One line of RUN/metrics.jsonl, TensorBoard scalars and the progress bar's losses."""
        values = {k: float(v) for k, v in terms.items()}
        values["beta"] = float(self.model.density.beta.detach())
        values["lr"] = self.optimizer.param_groups[1]["lr"]
        metrics.write(json.dumps({"iteration": self.iteration, "seconds": round(self.elapsed, 3), **values}) + "\n")
        metrics.flush()
        writer.scalars(values, self.iteration)
        bar.set_postfix(loss=f"{values['total']:.4f}", rgb=f"{values['rgb']:.4f}", beta=f"{values['beta']:.4f}")

    def _warn(self, metrics, writer: "_TensorBoard", bar) -> None:
        """Print the hooks' new warnings (``warning: ...`` on stderr, also with --quiet) and keep each
        as a line of RUN/metrics.jsonl (``{"iteration", "seconds", "warning"}``) and in TensorBoard."""
        for message in self.warnings:
            bar.write(f"warning: {message}", file=sys.stderr)
            metrics.write(json.dumps({"iteration": self.iteration, "seconds": round(self.elapsed, 3), "warning": message}) + "\n")
            metrics.flush()
            writer.text("train/warning", message, self.iteration)
        self.warnings.clear()

    # ------------------------------------------------------------------------------- time budget

    def _follow_budget(self) -> None:
        """For a run trained by time (``train.minutes``): time ``BUDGET_TIMED_STEPS`` steps from
        step ``BUDGET_TIMING_START`` on and set the run's length to fill the budget at that pace;
        then correct it from the pace of every ``BUDGET_RETIMED_STEPS`` steps, until fewer than
        that are left (then the length is final)."""
        if self.length_fixed:
            return
        if self._timed_from is None:
            if self.iteration >= BUDGET_TIMING_START:
                self._timed_from = (self.iteration, self.elapsed)
            return
        timed_steps = self.iteration - self._timed_from[0]
        if timed_steps >= (BUDGET_RETIMED_STEPS if self._length_set else BUDGET_TIMED_STEPS):
            step_seconds = (self.elapsed - self._timed_from[1]) / timed_steps
            left = max(1, int((self.config.train.minutes * 60.0 - self.elapsed) / step_seconds))
            self.set_run_length(self.iteration + left, final=left <= BUDGET_RETIMED_STEPS)
            self._timed_from, self._length_set = (self.iteration, self.elapsed), True

    def set_run_length(self, iterations: int, *, final: bool = True) -> None:
        """Make the run ``iterations`` steps long from here: the learning rate still decays to
        ``lr_final_factor`` at its end, and the hooks stretch their schedules; config.json and the
        checkpoints record the new length. A run trained by time corrects a length that is not
        ``final``."""
        decayed = self.optimizer.param_groups[0]["lr"] / self.scheduler.base_lrs[0]
        self.scheduler.gamma = (self.config.train.lr_final_factor / decayed) ** (1.0 / max(iterations - self.iteration, 1))
        self.config = self.config.with_values({"train.iterations": int(iterations)})
        write_json_atomic(self.run_dir / CONFIG_FILE, run_identity(self.config, self.scene_path))
        for hook in self.hooks:
            hook.set_run_length(iterations)
        self.length_fixed = final

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

    def text(self, name: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(name, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _advance(bar, train: TrainConfig, elapsed: float) -> None:
    """One step on the progress bar; its length follows a run trained by time, and the bar shows the
    minutes of the budget left."""
    if bar.total != train.iterations:
        bar.total = train.iterations
        bar.refresh()
    if train.minutes > 0:
        bar.set_description(f"{max(0.0, train.minutes - elapsed / 60):.1f} min left", refresh=False)
    bar.update(1)


def _hook_states(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every hook's state in a checkpoint; checkpoints written before hooks kept the volume
    refresh and the sphere optimiser under keys of their own."""
    if "hooks" in state:
        return state["hooks"]
    last = int(state.get("last_volume_refresh", -1))
    hooks = {"volume_refresh": {"last": last if last >= 0 else None}}
    if state.get("spheres") is not None:
        hooks["sphere_optimisation"] = state["spheres"]
    return hooks


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
