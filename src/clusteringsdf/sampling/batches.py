"""Training ray batches: which frames and pixels each step renders.

A batch holds ``frames_per_batch`` train frames with ``rays / frames_per_batch`` pixels each:

* uniformly random pixels (every method);
* for the label-comprehensive methods (the clustering losses), half of each frame's pixels cover
  every label of the frame (see :mod:`.pixels`) and frames are chosen with key-frame substitution;
* once a pixel guide is guiding (a sphere-guided run after its warm-up), its ``guided_fraction``
  of each frame's random pixels lie where the spheres project, the rest stay uniform (so surface
  the cloud does not cover yet still gets rays); frames where fewer spheres are visible keep more
  of their uniform pixels.
"""

from __future__ import annotations

import torch

from ..config import BatchConfig
from . import pixels
from .frames import FrameStore
from .rays import RayBatch
from .spheres import SphereCloud


class BatchBuilder:
    """Draws the rays of each training step from a :class:`FrameStore`.

    Args:
        store: frames and per-pixel targets on the training device.
        config: rays per step, frames per batch, key frames and label balance.
        near: minimum ray distance (normalised units).
        generator: the run's random generator (every draw comes from it, so runs are repeatable).
        label_comprehensive: cover every label of each frame (the ``segment`` targets) and choose
            frames with key-frame substitution, else uniformly random pixels only.
        guide: the sphere cloud of a sphere-guided run (it says from which iteration it guides); set
            by the sphere hook.
    """

    def __init__(
        self,
        store: FrameStore,
        config: BatchConfig,
        near: float,
        generator: torch.Generator,
        *,
        label_comprehensive: bool = False,
        guide: SphereCloud | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.frames_per_batch = max(1, min(config.frames_per_batch, len(store.train_frames)))
        self.near = near
        self.generator = generator
        self.label_comprehensive = label_comprehensive
        self.guide = guide
        if label_comprehensive:
            self.label_index = pixels.index_labels(store.targets["segment"])
            self.keyframes = pixels.keyframes(self.label_index, store.train_frames, config.keyframe_fraction)

    def next(self, iteration: int) -> RayBatch:
        """The rays of training step ``iteration``."""
        store, count, generator = self.store, self.frames_per_batch, self.generator
        if self.label_comprehensive:
            frames = pixels.choose_frames(
                self.label_index, store.train_frames, self.keyframes, count,
                substitute_probability=self.config.keyframe_probability, generator=generator,
            )
        else:
            frames = store.train_frames[torch.randint(0, len(store.train_frames), (count,), device=store.device, generator=generator)]
        per_frame = max(2, self.config.rays // count)
        free = per_frame // 2 if self.label_comprehensive else per_frame
        frame, pixel = pixels.random_pixels(frames, free, store.height * store.width, generator)
        if self.guide is not None and self.guide.guides(iteration):
            pixel = self._guided(frames, pixel, free)
        if self.label_comprehensive:
            label_frame, label_pixel = pixels.label_comprehensive_pixels(
                self.label_index, frames, per_frame - free, generator=generator, balance=self.config.label_balance
            )
            frame, pixel = torch.cat([frame, label_frame]), torch.cat([pixel, label_pixel])
        return store.rays(frame, pixel // store.width, pixel % store.width, self.near)

    def _guided(self, frames: torch.Tensor, pixel: torch.Tensor, free: int) -> torch.Tensor:
        """The ``free`` random pixels of each frame with the guide's share of them replaced by
        pixels where it projects (flat indices, (len(frames) * free,))."""
        store = self.store
        want = round(free * self.guide.config.guided_fraction)
        kept = []
        for i, f in enumerate(frames.tolist()):
            v, u = self.guide.pixels(store.poses[f], store.intrinsics[f], (store.height, store.width), want, generator=self.generator)
            kept.append(torch.cat([v * store.width + u, pixel[i * free : (i + 1) * free]])[:free])
        return torch.stack(kept).reshape(-1)
