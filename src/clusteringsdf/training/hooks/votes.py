"""The training labels' votes for the class of each object channel
(:class:`clusteringsdf.methods.ChannelVotes`).

Schedule: every step, after the optimiser step: each ray votes for its label's class in its
arg-max channel, weighted by the label's confidence; older votes decay by ``loss.vote_decay``.
The votes themselves are the method's state (inference reads them), checkpointed with it.
"""

from __future__ import annotations

from ...methods import ChannelVotes
from ...model import RenderOutput
from ...sampling.rays import RayBatch
from .base import HookContext, TrainingHook


class ChannelVoting(TrainingHook):
    """Votes every step (methods that train object opacities)."""

    name = "channel_votes"

    def __init__(self, votes: ChannelVotes, decay: float) -> None:
        self.votes = votes
        self.decay = decay

    @classmethod
    def attach(cls, context: HookContext) -> "ChannelVoting | None":
        if not context.method.uses_opacity:
            return None
        return cls(context.method.votes, context.config.loss.vote_decay)

    def after_step(self, iteration: int, rays: RayBatch, out: RenderOutput) -> None:
        self.votes.vote(out.opacity, rays.targets["semantic"], rays.targets["confidence"], self.decay)
