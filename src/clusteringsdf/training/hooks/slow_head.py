"""Contrastive Lift's slow embedding head: an exponential moving average of the field's embedding
head (reference §3), every step after the optimiser step. The slow head is the method's state
(:class:`clusteringsdf.methods.Contrastive`), checkpointed with it."""

from __future__ import annotations

from torch import nn

from ...losses.contrastive import ema_update
from ...model import RenderOutput
from ...sampling.rays import RayBatch
from .base import HookContext, TrainingHook


class SlowHeadAverage(TrainingHook):
    """Moves the method's slow head towards the field's embedding head every step."""

    name = "slow_head_average"

    def __init__(self, slow: nn.Module, fast: nn.Module) -> None:
        self.slow = slow
        self.fast = fast

    @classmethod
    def attach(cls, context: HookContext) -> "SlowHeadAverage | None":
        slow = getattr(context.method, "slow_embedding_head", None)
        return None if slow is None else cls(slow, context.model.field.embedding_head)

    def after_step(self, iteration: int, rays: RayBatch, out: RenderOutput) -> None:
        ema_update(self.slow, self.fast)
