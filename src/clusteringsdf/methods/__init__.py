"""Training methods: one object per method, one registry.

:data:`METHODS` maps the ``mode`` of a config to its :class:`Method` class. A method provides its
render requests, per-pixel segment targets, weighted loss terms, post-step hooks and render-time
label fusion (see :mod:`.base`); adding one is a new module plus one line here (CONTRIBUTING.md, "Adding a
method").
"""

from __future__ import annotations

from ..config import ConfigError
from .base import ChannelVotes, LabelView, Method, channel_sharing_note
from .contrastive import Contrastive
from .instance import Instance
from .objectsdf import ObjectSDF
from .panoptic import Panoptic
from .semantic import Semantic
from .terms import Term, Terms, weighted_total

METHODS: dict[str, type[Method]] = {
    "objectsdf": ObjectSDF,
    "instance": Instance,
    "semantic": Semantic,
    "panoptic": Panoptic,
    "contrastive": Contrastive,
}


def method_class(mode: str) -> type[Method]:
    """The method a config's ``mode`` names; an unknown name is a one-line :class:`ConfigError`."""
    if mode not in METHODS:
        raise ConfigError(f"mode: {mode!r} is not one of {', '.join(METHODS)}")
    return METHODS[mode]


__all__ = [
    "METHODS", "ChannelVotes", "channel_sharing_note", "Contrastive", "Instance", "LabelView", "Method", "ObjectSDF", "Panoptic", "Semantic", "Term",
    "Terms", "method_class", "weighted_total",
]
