"""Warnings for a run that trains without getting anywhere: a grey blur, or a scene box that does not
fit the scene. Each check warns once per run, with one line that says what to look at.

Nothing is rendered for the checks: they read what every step computes anyway (the rendered colours
and depths of its training rays) and the cached SDF volume the samplers keep. The per-step figures
are summed on the device and read once every :data:`BLOCK_STEPS` steps.

No check judges a run before its warm-up, ``max(MIN_STEPS, WARMUP_SHARE x run length)`` steps (the
geometry and colours are still forming; the tiny test runs are never judged). ``window`` below is
``max(MIN_WINDOW_STEPS, WINDOW_SHARE x run length)`` steps.

* ``photometric_stall``: the PSNR of the rendered colours of the training rays, from their mean
  squared error over the last window (``-10 log10 MSE``, the colour loss itself is an L1), is below
  :data:`PSNR_FLOOR_DB` and has gained less than :data:`STALL_MARGIN_DB` over the window before.
  Even coarse geometry with its colours reaches over 20 dB on a scene's own frames; a run stuck
  under the floor renders a blur (a wrong box or scale, frames and poses that disagree, or far too
  few steps).
* ``far_bound``: over the last window, more than :data:`FAR_SHARE` of the training rays end (their
  expected ray distance) within :data:`FAR_BAND` of their near-far span of the far bound, where a
  ray leaves the scene box: the surfaces they see lie beyond the box (a box too small for the
  scene), or none has formed.
* ``box_surfaces``: the zero level of the cached SDF volume (its sign changes along the grid's
  edges, linearly interpolated) spans under :data:`SURFACE_EXTENT_SHARE` of the box along every
  axis, or there is none in the box: the box is far larger than the scene and the field spends its
  resolution on empty space. Checked after the warm-up and then once per window, for runs whose
  sampler keeps the volume (``grid``, ``spheres``, ``depth`` with either).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...model import RenderOutput
from ...model.samplers import SdfVolume
from ...sampling.rays import RayBatch
from .base import HookContext, TrainingHook

WARMUP_SHARE = 0.5  # no check before this share of the run (a real capture was still at 14.8 dB at 37% and fine at the end) ...
MIN_STEPS = 300  # ... nor before this many steps
WINDOW_SHARE = 0.1  # the window the checks average over, as a share of the run ...
MIN_WINDOW_STEPS = 50  # ... and at least this many steps
BLOCK_STEPS = 10  # steps summed on the device between two reads
PSNR_FLOOR_DB = 18.0  # photometric_stall: the training rays' PSNR is below this ...
STALL_MARGIN_DB = 0.5  # ... and gained less than this over the last window
FAR_BAND = 0.02  # far_bound: a ray ends at the far bound within this share of its near-far span ...
FAR_SHARE = 0.5  # ... and more than this share of the window's rays do
SURFACE_EXTENT_SHARE = 0.1  # box_surfaces: the surfaces span under this share of the box on every axis

ADVICE_BOX = "check the box and scale with `clusteringsdf info SCENE` (a colour-only scene without points3d.ply gets its camera frusta to 5 units as its box)"


def surface_bounds(values: torch.Tensor) -> torch.Tensor | None:
    """(2, 3) lowest and highest (x, y, z) vertex coordinates, in voxels, of the zero crossings of an
    SDF volume ``values`` (D, H, W) indexed [z, y, x] along the grid's edges (linearly
    interpolated); None when the SDF changes sign nowhere."""
    low = torch.full((3,), math.inf, device=values.device)
    high = torch.full((3,), -math.inf, device=values.device)
    for dim in range(3):
        count = values.shape[dim] - 1
        s0, s1 = values.narrow(dim, 0, count), values.narrow(dim, 1, count)
        crossing = (s0 > 0) != (s1 > 0)
        index = crossing.nonzero()
        if index.shape[0] == 0:
            continue
        a, b = s0[crossing], s1[crossing]
        position = index.to(values.dtype)
        position[:, dim] += a / (a - b)  # a and b differ in sign: a - b is never 0
        low, high = torch.minimum(low, position.amin(0)), torch.maximum(high, position.amax(0))
    if not bool(torch.isfinite(low).all()):
        return None
    return torch.stack([low, high]).flip(-1)


def surface_extent(volume: SdfVolume) -> list[float]:
    """Share of the box (x, y, z) that the volume's zero level spans on each axis (0 where none)."""
    bounds = surface_bounds(volume.values[0, 0])
    if bounds is None:
        return [0.0, 0.0, 0.0]
    spans = torch.tensor(volume.values.shape[2:][::-1], device=bounds.device) - 1
    return ((bounds[1] - bounds[0]) / spans).tolist()


class TrainingHealth(TrainingHook):
    """The run's health checks (see the module docstring); warns through :meth:`take_warnings`.

    Args:
        iterations: the run's length in steps.
        volume: the model's cached SDF volume (read only when ready).
        photometric: whether the run trains on colour (``loss.rgb`` > 0).
    """

    name = "training_health"

    def __init__(self, iterations: int, volume: SdfVolume | None = None, photometric: bool = True) -> None:
        self.iterations = iterations
        self.volume = volume
        self.photometric = photometric
        self.mse: list[float] = []  # mean squared colour error of each finished block
        self.far: list[float] = []  # share of rays ending at the far bound, per finished block
        self.warned: set[str] = set()
        self.pending: list[str] = []
        self._sums = torch.zeros(2)  # this block's summed per-step MSE and far share (on the device)
        self._steps = 0

    @classmethod
    def attach(cls, context: HookContext) -> "TrainingHealth":
        return cls(context.config.train.iterations, context.model.volume, context.config.loss.rgb > 0)

    # ------------------------------------------------------------------------------ schedule

    @property
    def warmup(self) -> int:
        return max(MIN_STEPS, math.ceil(WARMUP_SHARE * self.iterations))

    @property
    def window_blocks(self) -> int:
        return max(1, math.ceil(max(MIN_WINDOW_STEPS, WINDOW_SHARE * self.iterations) / BLOCK_STEPS))

    def set_run_length(self, iterations: int) -> None:
        self.iterations = iterations

    # ----------------------------------------------------------------------------- the steps

    def after_step(self, iteration: int, rays: RayBatch, out: RenderOutput) -> None:
        with torch.no_grad():
            if self._sums.device != out.rgb.device:
                self._sums = self._sums.to(out.rgb.device)
            if rays.rgb is not None:
                self._sums[0] += ((out.rgb.detach().clamp(0.0, 1.0) - rays.rgb) ** 2).mean()
            distance = out.depth.detach() / rays.dz.clamp_min(1e-6)
            self._sums[1] += ((rays.far - distance) <= FAR_BAND * (rays.far - rays.near)).float().mean()
        self._steps += 1
        if (iteration + 1) % BLOCK_STEPS == 0:
            mse, far = (self._sums / self._steps).tolist()
            self._sums.zero_()
            self._steps = 0
            self.end_block(iteration + 1, mse if rays.rgb is not None else math.nan, far)

    def end_block(self, steps: int, mse: float, far: float) -> None:
        """A block of steps ended after ``steps`` steps of the run, its rays' mean squared colour
        error ``mse`` and share ``far`` ending at the far bound: keep them, and check."""
        keep = 2 * self.window_blocks
        self.mse, self.far = [*self.mse, mse][-keep:], [*self.far, far][-keep:]
        if steps < self.warmup:
            return
        self._check_photometric(steps)
        self._check_far_bound(steps)
        if (steps - self.warmup) // BLOCK_STEPS % self.window_blocks == 0:
            self.check_box(steps)

    def take_warnings(self) -> list[str]:
        pending, self.pending = self.pending, []
        return pending

    def _warn(self, check: str, message: str) -> None:
        if check not in self.warned:
            self.warned.add(check)
            self.pending.append(message)

    # ---------------------------------------------------------------------------- the checks

    def _check_photometric(self, steps: int) -> None:
        window = self.window_blocks
        if not self.photometric or len(self.mse) < 2 * window:
            return
        recent, before = _psnr(self.mse[-window:]), _psnr(self.mse[-2 * window : -window])
        if recent < PSNR_FLOOR_DB and recent - before < STALL_MARGIN_DB:
            self._warn(
                "photometric_stall",
                f"training has stalled at {recent:.1f} dB PSNR on its own training rays ({recent - before:+.1f} dB over the last "
                f"{window * BLOCK_STEPS} steps, step {steps} of {self.iterations}; a forming scene passes {PSNR_FLOOR_DB:g} dB): "
                f"the run renders a blur. {ADVICE_BOX}; check that frames and poses agree (prepare's notes, bad frames left out); "
                "give depth (prepare --depth); or train longer (--iters)",
            )

    def _check_far_bound(self, steps: int) -> None:
        window = self.window_blocks
        if len(self.far) < window:
            return
        share = sum(self.far[-window:]) / window
        if share > FAR_SHARE:
            self._warn(
                "far_bound",
                f"{100 * share:.0f}% of the training rays end at the far side of the scene box (step {steps}): the surfaces they "
                f"see lie beyond the box, or none has formed. {ADVICE_BOX}; widen it with --set data.box_margin=0.3, "
                "or give depth (prepare --depth)",
            )

    def check_box(self, steps: int) -> None:
        """The ``box_surfaces`` check on the cached volume (when it holds an evaluation)."""
        if self.volume is None or not self.volume.is_ready:
            return
        extent = surface_extent(self.volume)
        if max(extent) < SURFACE_EXTENT_SHARE:
            spans = " x ".join(f"{100 * e:.0f}%" for e in extent)
            found = f"span only {spans} of the scene box" if max(extent) > 0 else "are nowhere inside the scene box"
            self._warn(
                "box_surfaces",
                f"the surfaces of the SDF {found} (x, y, z at step {steps}): the box is far larger than the scene and the field "
                f"spends its resolution on empty space. {ADVICE_BOX}; give depth (prepare --depth) so that the box is drawn "
                "around the depth points",
            )

    # -------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        sums = self._sums.tolist()
        return {"mse": list(self.mse), "far": list(self.far), "warned": sorted(self.warned), "sums": sums, "steps": self._steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mse, self.far = list(state["mse"]), list(state["far"])
        self.warned = set(state["warned"])
        self._sums = torch.tensor(state["sums"], dtype=torch.float32, device=self._sums.device)
        self._steps = int(state["steps"])


def _psnr(mse: list[float]) -> float:
    """PSNR (dB) of the mean of per-block mean squared errors of colours in [0, 1]."""
    mean = sum(mse) / len(mse)
    return math.inf if mean <= 0 else -10.0 * math.log10(mean)
