"""Training ray batches: which frames and pixels each step renders.

A batch holds ``frames_per_batch`` train frames with ``rays / frames_per_batch`` pixels each:

* uniformly random pixels (every method);
* for the clustering methods, half of each frame's pixels are label-comprehensive (every label of
  the frame gets rays, see :mod:`.pixels`) and frames are chosen with key-frame substitution;
* after the warm-up of a sphere-guided run, ``guided_fraction`` of each frame's random pixels lie
  where the spheres project, the rest stay uniform (so surface the cloud does not cover yet still
  gets rays); frames where fewer spheres are visible keep more of their uniform pixels.
"""

from __future__ import annotations

import torch

from ..config import ClusteringConfig, TrainConfig
from . import pixels
from .frames import FrameStore
from .rays import RayBatch
from .spheres import SphereCloud


class BatchBuilder:
    """Draws the rays of each training step from a :class:`FrameStore`.

    Args:
        store: frames and per-pixel targets on the training device.
        train: rays per step and frames per batch.
        near: minimum ray distance (normalised units).
        generator: the run's random generator (every draw comes from it, so runs are repeatable).
        clustering: key-frame settings for label-comprehensive batches (the clustering methods), or
            None for uniformly random pixels only.
        spheres: the sphere cloud of a sphere-guided run, and ``guided_fraction`` its pixel share.
    """

    def __init__(
        self,
        store: FrameStore,
        train: TrainConfig,
        near: float,
        generator: torch.Generator,
        clustering: ClusteringConfig | None = None,
        spheres: SphereCloud | None = None,
        guided_fraction: float = 0.0,
    ) -> None:
        self.store = store
        self.rays_per_step = train.rays
        self.frames_per_batch = max(1, min(train.frames_per_batch, len(store.train_frames)))
        self.near = near
        self.generator = generator
        self.clustering = clustering
        self.spheres = spheres
        self.guided_fraction = guided_fraction
        if clustering is not None:
            self.label_index = pixels.index_labels(store.segment)
            self.keyframes = pixels.keyframes(self.label_index, store.train_frames, clustering.keyframe_fraction)

    def next(self, sphere_guided: bool = False) -> RayBatch:
        """The rays of one step; ``sphere_guided`` once the sphere warm-up is over."""
        store, count, generator = self.store, self.frames_per_batch, self.generator
        if self.clustering is not None:
            frames = pixels.choose_frames(
                self.label_index, store.train_frames, self.keyframes, count, self.clustering.keyframe_probability, generator
            )
        else:
            frames = store.train_frames[torch.randint(0, len(store.train_frames), (count,), device=store.device, generator=generator)]
        per_frame = max(2, self.rays_per_step // count)
        free = per_frame // 2 if self.clustering is not None else per_frame
        frame, pixel = pixels.random_pixels(frames, free, store.height * store.width, generator)
        if sphere_guided and self.spheres is not None:
            want = round(free * self.guided_fraction)
            kept = []
            for i, f in enumerate(frames.tolist()):
                v, u = self.spheres.pixels(store.poses[f], store.intrinsics[f], (store.height, store.width), want, generator)
                kept.append(torch.cat([v * store.width + u, pixel[i * free : (i + 1) * free]])[:free])
            pixel = torch.stack(kept).reshape(-1)
        if self.clustering is not None:
            label_frame, label_pixel = pixels.label_comprehensive_pixels(
                self.label_index, frames, per_frame - free, generator, self.clustering.label_balance
            )
            frame, pixel = torch.cat([frame, label_frame]), torch.cat([pixel, label_pixel])
        return store.rays(frame, pixel // store.width, pixel % store.width, self.near)
