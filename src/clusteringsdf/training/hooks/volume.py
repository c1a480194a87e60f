"""Refreshing the cached SDF volume the samplers read (:class:`clusteringsdf.model.samplers.SdfVolume`).

Schedule: before the first step, then every ``min(sampler.grid_update_every, max(10, iteration // 4))``
steps: often while the geometry forms, every ``grid_update_every`` steps later on.
"""

from __future__ import annotations

from typing import Any

from ...model import Model
from .base import HookContext, TrainingHook


class VolumeRefresh(TrainingHook):
    """Re-evaluates the model's cached SDF volume on its schedule (runs whose training sampler reads it)."""

    name = "volume_refresh"

    def __init__(self, model: Model, every: int) -> None:
        self.model = model
        self.every = every
        self.last: int | None = None  # iteration of the last refresh

    @classmethod
    def attach(cls, context: HookContext) -> "VolumeRefresh | None":
        if not context.model.train_sampler.uses_volume:
            return None
        return cls(context.model, context.config.sampler.grid_update_every)

    def before_step(self, iteration: int) -> None:
        interval = min(self.every, max(10, iteration // 4))
        if not self.model.volume.is_ready or self.last is None or iteration - self.last >= interval:
            self.model.refresh_volume()
            self.last = iteration

    def state_dict(self) -> dict[str, Any]:
        return {"last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = state["last"]
