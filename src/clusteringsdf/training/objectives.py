"""The training objective: which losses apply in which mode, with their weights.

Every function returns a dict of named, unweighted terms; :func:`weighted_total` applies the
weights from the config. Modes: ``objectsdf`` (ObjectSDF++: opacity BCE against per-pixel channel
targets), the ClusteringSDF modes and the contrastive baseline (added by the clustering module).
"""

from __future__ import annotations

import torch

from ..config import Config
from ..losses import geometry as geometry_losses
from ..losses import reconstruction, segmentation
from ..model.renderer import Renderer
from ..sampling.rays import RayBatch


def reconstruction_terms(out: dict[str, torch.Tensor], rays: RayBatch, config: Config) -> dict[str, torch.Tensor]:
    """Colour, depth and normal terms on the rendered rays."""
    terms = {"rgb": reconstruction.rgb_l1(out["rgb"], rays.rgb)}
    if rays.depth is not None and config.loss.depth > 0:
        if config.loss.depth_mode == "ssi":
            terms["depth"] = reconstruction.depth_scale_shift_invariant(out["depth"], rays.depth, rays.frame)
        else:
            terms["depth"] = reconstruction.depth_l1(out["depth"], rays.depth)
    if "normal" in out and rays.normal is not None:
        terms["normal_l1"], terms["normal_cos"] = reconstruction.normal_losses(out["normal"], rays.normal, out.get("surface_crossing"))
    return terms


def geometry_terms(
    renderer: Renderer, out: dict[str, torch.Tensor], config: Config, progress: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Eikonal (every channel), smoothness (every channel) and collision on regulariser points.

    Points: ``eikonal_points`` uniform in the scene box, one rendered sample per ray (near the
    surface), and a jittered neighbour of each of those for the smoothness term.
    """
    loss = config.loss
    bbox = renderer.bbox
    device = bbox.device
    uniform = bbox[0] + (bbox[1] - bbox[0]) * torch.rand(loss.eikonal_points, 3, device=device, generator=generator)
    surface = out["surface_points"]
    jitter = (torch.rand(surface.shape, device=device, generator=generator) * 2 - 1) * loss.smooth_epsilon
    points = torch.cat([uniform, surface, surface + jitter])
    geometry = renderer.field.geometry(points, with_jacobian=True)
    n_u, n_s = uniform.shape[0], surface.shape[0]
    jac = geometry.jacobian
    terms = {
        "eikonal": geometry_losses.eikonal(jac[: n_u + n_s]),
        "smooth": geometry_losses.smoothness(jac[n_u : n_u + n_s], jac[n_u + n_s :]),
    }
    if loss.collision > 0 and progress >= loss.collision_start:
        terms["collision"] = geometry_losses.collision(geometry.sdf)
    return terms


def objectsdf_terms(out: dict[str, torch.Tensor], rays: RayBatch, config: Config) -> dict[str, torch.Tensor]:
    """ObjectSDF++'s supervision: opacity BCE against channel targets, plus the semantic head."""
    return {
        "opacity_bce": segmentation.opacity_bce(out["opacity"], rays.segment),
        "semantic": segmentation.semantic_cross_entropy(out["semantics"], rays.semantic, rays.confidence),
    }


WEIGHT_NAMES = {
    "rgb": ("loss", "rgb"),
    "depth": ("loss", "depth"),
    "normal_l1": ("loss", "normal_l1"),
    "normal_cos": ("loss", "normal_cos"),
    "eikonal": ("loss", "eikonal"),
    "smooth": ("loss", "smooth"),
    "collision": ("loss", "collision"),
    "opacity_bce": ("loss", "opacity_bce"),
    "semantic": ("loss", "semantic"),
}


def weighted_total(terms: dict[str, torch.Tensor], config: Config) -> torch.Tensor:
    """Sum of terms times their config weights (a term without a known weight counts once)."""
    total = None
    for name, value in terms.items():
        section, key = WEIGHT_NAMES.get(name, (None, None))
        weight = getattr(getattr(config, section), key) if section else 1.0
        if weight == 0:
            continue
        total = value * weight if total is None else total + value * weight
    if total is None:
        raise ValueError("no loss terms")
    return total
