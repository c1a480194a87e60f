"""What a training hook is: a feature that takes part in training next to the optimiser step, with
its own schedule and its own state.

The trainer knows no feature by name. For each run it asks every hook class of the registry
(:data:`clusteringsdf.training.hooks.HOOKS`) to :meth:`TrainingHook.attach` itself; a hook the run
does not need (a sphere hook without a sphere cloud) answers None. Every step the trainer calls
:meth:`TrainingHook.before_step` on each attached hook, in registry order, before it draws the
step's rays, and :meth:`TrainingHook.after_step` after the optimiser step; every checkpoint holds
each hook's :meth:`TrainingHook.state_dict` under its ``name``, so a resumed run continues exactly.
A hook decides itself when it acts (every step, every n steps, after a warm-up), from the
iteration it is given and its state. A hook that finds something wrong with the run says so with
:meth:`TrainingHook.take_warnings`, which the trainer asks after every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ...config import Config
from ...methods import Method
from ...model import Model, RenderOutput
from ...sampling.batches import BatchBuilder
from ...sampling.rays import RayBatch


@dataclass
class HookContext:
    """What a hook may use: the run's config, model, method, batch builder (a hook may give it a
    pixel guide) and random generator (a hook that draws random numbers takes them from it, so
    runs stay repeatable)."""

    config: Config
    model: Model
    method: Method
    batches: BatchBuilder
    generator: torch.Generator


class TrainingHook:
    """Base class of the training hooks (see the module docstring)."""

    name: ClassVar[str] = ""

    @classmethod
    def attach(cls, context: HookContext) -> "TrainingHook | None":
        """The hook for this run, or None when the run does not use it."""
        raise NotImplementedError

    def before_step(self, iteration: int) -> None:
        """Before step ``iteration`` draws its rays (0-based: the step about to run)."""

    def after_step(self, iteration: int, rays: RayBatch, out: RenderOutput) -> None:
        """After the optimiser step of ``iteration``, with the step's rays and rendered outputs."""

    def set_run_length(self, iterations: int) -> None:
        """The run is ``iterations`` steps long (a run trained by time learns its length after its
        first steps): a hook whose schedule is a fraction of the run stretches it."""

    def take_warnings(self) -> list[str]:
        """Warnings raised since the last call, one line each (the trainer prints them and keeps them
        in RUN/metrics.jsonl); a hook warns of each thing once, and keeps that it did in its state."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the hook (tensors and plain values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
