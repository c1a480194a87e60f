"""Training hooks: features that take part in training next to the optimiser step, each with its
own schedule and state (see :mod:`.base`).

:data:`HOOKS` is the one registry, in the order the hooks run each step. Adding a hook is a new
module with a :class:`TrainingHook` subclass and one line here (CONTRIBUTING.md, "Adding a training hook").
"""

from __future__ import annotations

from .base import HookContext, TrainingHook
from .health import TrainingHealth
from .slow_head import SlowHeadAverage
from .spheres import SphereOptimisation
from .volume import VolumeRefresh
from .votes import ChannelVoting

HOOKS: list[type[TrainingHook]] = [
    VolumeRefresh,
    SphereOptimisation,
    ChannelVoting,
    SlowHeadAverage,
    TrainingHealth,
]


def attach_hooks(context: HookContext) -> list[TrainingHook]:
    """The hooks this run uses, in registry order."""
    return [hook for hook_class in HOOKS if (hook := hook_class.attach(context)) is not None]


__all__ = ["HOOKS", "ChannelVoting", "HookContext", "SlowHeadAverage", "SphereOptimisation", "TrainingHealth", "TrainingHook", "VolumeRefresh", "attach_hooks"]
