"""Monocular depth for colour-only captures: ``prepare --mono-depth WEIGHTS``.

Any ``transformers`` depth-estimation model (a local folder or a model id, as for the segmenters:
:mod:`.segmenters.hf`), e.g. Depth Anything V2 (``depth-anything/Depth-Anything-V2-Small-hf``),
predicts a map for every frame. What the map holds depends on the model (``output``):

* ``disparity``: relative inverse depth, known up to a scale and a shift (Depth Anything's relative
  models, DPT / MiDaS). Fitted per frame as ``1 / z = a * p + b``.
* ``depth``: depth up to a scale (metric models: Depth Anything's ``metric`` checkpoints, ZoeDepth,
  GLPN, Depth Pro). Fitted per frame as ``z = s * p``, so that it takes the scene's unit.

``auto`` reads it from the checkpoint's config (``model_type`` and Depth Anything's
``depth_estimation_type``) and fails with one line when the config does not tell.

Each frame's map is fitted to the depths of the structure-from-motion points seen in that frame (the
keypoints with a triangulated 3D point, in the scene's unit after the pose scale) by a small RANSAC
(two-point samples for ``disparity``, one-point for ``depth``, inliers within :data:`INLIER_ERROR`
relative depth error) followed by a least-squares refit on the inliers. Predicted depths beyond
:data:`FAR_FACTOR` times the frame's farthest inlier point (sky, far background where the fit
extrapolates) and non-positive ones are left missing. A frame with fewer than :data:`MIN_POINTS`
points, or whose best fit explains fewer than :data:`MIN_INLIER_SHARE` of them, gets no depth (all 0).

The result is a relative, model-made depth in the scene's (usually arbitrary) unit: ``prepare.json``
records ``"depth_source": "mono"`` so that training can treat it as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ClusteringSDFError, DataError
from .frames import StagedFrames
from .segmenters.hf import checkpoint, load_pretrained

__all__ = ["MONO_DEPTH_OUTPUTS", "DepthFit", "MonoDepthFrames", "MonoDepthModel", "fit_depth", "output_kind"]

MONO_DEPTH_OUTPUTS = ("auto", "disparity", "depth")
INLIER_ERROR = 0.1  # relative depth error of an inlier point
MIN_POINTS = 8
MIN_INLIER_SHARE = 0.3
FAR_FACTOR = 3.0
RANSAC_SAMPLES = 256
EXAMPLE = "depth-anything/Depth-Anything-V2-Small-hf"
# model types whose output is depth (up to a scale); the other relative models output disparity
DEPTH_OUTPUT_TYPES = ("zoedepth", "glpn", "depth_pro")
DISPARITY_OUTPUT_TYPES = ("dpt",)
DEPTH_ANYTHING_TYPES = ("depth_anything", "prompt_depth_anything")


def output_kind(config: dict) -> str | None:
    """``disparity`` or ``depth`` for a checkpoint's config (see the module docstring); None: unknown."""
    model_type = config.get("model_type")
    if model_type in DEPTH_ANYTHING_TYPES:
        return "depth" if config.get("depth_estimation_type") == "metric" else "disparity"
    if model_type in DEPTH_OUTPUT_TYPES:
        return "depth"
    if model_type in DISPARITY_OUTPUT_TYPES:
        return "disparity"
    return None


@dataclass(frozen=True)
class DepthFit:
    """A fitted map -> depth: ``z = scale * p`` (kind ``depth``) or ``1 / z = scale * p + shift``
    (``disparity``); ``inliers`` of ``points`` agree within :data:`INLIER_ERROR`, the farthest at ``far``."""

    kind: str
    scale: float
    shift: float
    inliers: int
    points: int
    far: float

    def apply(self, prediction: np.ndarray) -> np.ndarray:
        """Depth (same shape as ``prediction``) in the points' unit, 0 where not valid."""
        p = prediction.astype(np.float64)
        if self.kind == "depth":
            z = self.scale * p
        else:
            inverse = self.scale * p + self.shift
            z = np.divide(1.0, inverse, out=np.zeros_like(inverse), where=inverse > 0)
        ok = np.isfinite(z) & (z > 0) & (z <= FAR_FACTOR * self.far)
        return np.where(ok, z, 0.0).astype(np.float32)


def _relative_errors(kind: str, params: tuple[float, float], p: np.ndarray, z: np.ndarray) -> np.ndarray:
    scale, shift = params
    if kind == "depth":
        return np.abs(scale * p - z) / z
    return np.abs((scale * p + shift) * z - 1.0)  # |1/z' - 1/z| / (1/z) ~ relative depth error


def _least_squares(kind: str, p: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """The fit minimising the squared relative errors of the points."""
    if kind == "depth":
        ratio = p / z
        return float(ratio.sum() / max(float((ratio * ratio).sum()), 1e-300)), 0.0
    rows = np.stack([p * z, z], axis=1)  # (a p + b) z = 1
    (scale, shift), *_ = np.linalg.lstsq(rows, np.ones_like(p), rcond=None)
    return float(scale), float(shift)


def _candidates(kind: str, p: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> list[tuple[float, float]]:
    """RANSAC hypotheses: from one point (``depth``) or two points (``disparity``)."""
    n = len(p)
    if kind == "depth":
        picks = np.arange(n) if n <= RANSAC_SAMPLES else rng.choice(n, RANSAC_SAMPLES, replace=False)
        return [(float(z[i] / p[i]), 0.0) for i in picks if p[i] > 0]
    if n * (n - 1) // 2 <= RANSAC_SAMPLES:
        pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    else:
        first = rng.integers(0, n, RANSAC_SAMPLES)
        pairs = np.stack([first, (first + rng.integers(1, n, RANSAC_SAMPLES)) % n], axis=1)
    out = []
    for i, j in pairs:
        if abs(p[i] - p[j]) < 1e-12:
            continue
        scale = (1.0 / z[i] - 1.0 / z[j]) / (p[i] - p[j])
        if scale > 0:  # disparity grows as depth shrinks
            out.append((float(scale), float(1.0 / z[i] - scale * p[i])))
    return out


def fit_depth(prediction: np.ndarray, depth: np.ndarray, kind: str, *, seed: int = 0) -> DepthFit | None:
    """Fit a model's predictions ``prediction`` (N,) at points to their known depths ``depth`` (N,).

    ``kind``: ``depth`` (scale only) or ``disparity`` (scale and shift of inverse depth). Robust to
    outliers (see the module docstring); None when there are too few points or inliers.
    """
    if kind not in ("depth", "disparity"):
        raise ValueError(f"unknown output kind '{kind}'")
    p, z = np.asarray(prediction, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(z) & (z > 0) & ((p > 0) if kind == "depth" else True)
    p, z = p[ok], z[ok]
    if len(p) < MIN_POINTS:
        return None
    rng = np.random.default_rng(seed)
    best, best_count = None, 0
    for params in _candidates(kind, p, z, rng):
        count = int((_relative_errors(kind, params, p, z) < INLIER_ERROR).sum())
        if count > best_count:
            best, best_count = params, count
    if best is None:
        return None
    for _ in range(3):  # refit on the inliers, which may change them
        inliers = _relative_errors(kind, best, p, z) < INLIER_ERROR
        if inliers.sum() < 2:
            return None
        best = _least_squares(kind, p[inliers], z[inliers])
    inliers = _relative_errors(kind, best, p, z) < INLIER_ERROR
    if inliers.sum() < max(MIN_POINTS, MIN_INLIER_SHARE * len(p)) or best[0] <= 0:
        return None
    return DepthFit(kind, best[0], best[1], int(inliers.sum()), len(p), float(z[inliers].max()))


class MonoDepthModel:
    """A depth-estimation checkpoint (local folder or model id) and what its output is."""

    def __init__(self, weights: str | Path, output: str = "auto", device: str = "cpu") -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

        folder, config = checkpoint(weights, "--mono-depth", None, EXAMPLE, option="--mono-depth")
        model_type = config.get("model_type")
        if model_type not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES:
            raise DataError(folder, f"holds a '{model_type}' checkpoint, not a depth-estimation model (e.g. {EXAMPLE})")
        if output not in MONO_DEPTH_OUTPUTS:
            raise ValueError(f"--mono-depth-output must be one of {', '.join(MONO_DEPTH_OUTPUTS)}")
        kind = output_kind(config) if output == "auto" else output
        if kind is None:
            raise ClusteringSDFError(f"--mono-depth {weights}: cannot tell from its config whether a '{model_type}' model outputs "
                                     "disparity or depth; give --mono-depth-output disparity (relative inverse depth) or depth")
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.processor, self.model = load_pretrained(folder, AutoImageProcessor, AutoModelForDepthEstimation, device=device,
                                                     name="depth-estimation")
        self.kind, self.device, self.name = kind, device, str(weights)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """The model's output (H, W) float32 for ``rgb`` (H, W, 3) uint8, at the image's size."""
        import torch

        height, width = rgb.shape[:2]
        inputs = self.processor(images=rgb, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        post = getattr(self.processor, "post_process_depth_estimation", None)
        if post is not None:
            prediction = post(outputs, target_sizes=[(height, width)])[0]["predicted_depth"]
        else:
            prediction = torch.nn.functional.interpolate(outputs.predicted_depth[:, None], size=(height, width), mode="bilinear",
                                                         align_corners=False)[0, 0]
        return prediction.float().cpu().numpy()


class MonoDepthFrames:
    """Monocular depth of the staged frames fitted to the SfM points; :meth:`read` gives float32
    (H, W) in the scene's unit at the frames' size (0 = missing), as :class:`.depth.DepthFrames` does.

    Args:
        observations: frame name -> (N, 3) keypoints (u, v) of the staged frame (layout pixel
            convention) with the depth of their 3D point in the scene's unit.
    """

    def __init__(self, model: MonoDepthModel, frames: StagedFrames, observations: dict[str, np.ndarray] | None) -> None:
        self.model, self.frames, self.observations = model, frames, observations or {}
        self.fits: dict[str, DepthFit | None] = {}

    def read(self, name: str) -> np.ndarray:
        with Image.open(self.frames.path(name)) as image:
            rgb = np.asarray(image.convert("RGB"))
        prediction = self.model.predict(rgb)
        obs = self.observations.get(name, np.zeros((0, 3)))
        u, v = np.rint(obs[:, 0]).astype(np.int64), np.rint(obs[:, 1]).astype(np.int64)
        inside = (u >= 0) & (u < prediction.shape[1]) & (v >= 0) & (v < prediction.shape[0])
        fit = fit_depth(prediction[v[inside], u[inside]], obs[inside, 2], self.model.kind)
        self.fits[name] = fit
        return fit.apply(prediction) if fit is not None else np.zeros(prediction.shape, dtype=np.float32)

    def summary(self) -> dict:
        """What ``prepare.json`` records of the fits (after every frame was read)."""
        fitted = {n: f for n, f in self.fits.items() if f is not None}
        shares = [f.inliers / f.points for f in fitted.values()]
        return {"source": "mono", "model": self.model.name, "output": self.model.kind, "frames_fitted": len(fitted),
                "frames_without_depth": sorted(n for n, f in self.fits.items() if f is None),
                "median_points": float(np.median([f.points for f in fitted.values()])) if fitted else 0.0,
                "median_inlier_share": round(float(np.median(shares)), 3) if shares else 0.0}
