"""The training objective: which losses apply in which mode, with their weights.

Every function returns a dict of named, unweighted terms; :func:`weighted_total` applies the
weights from the config. Modes:

* ``objectsdf``: ObjectSDF++ (opacity BCE against per-pixel channel targets) + semantic head;
* ``instance``: ClusteringSDF Eq. 11 (clustering + cross-view + fg/bg) on per-view instance labels;
* ``semantic``: ClusteringSDF Eq. 10 (clustering + semantic matching + fg/bg), class u = channel u;
* ``panoptic``: ``instance`` + the semantic head, one model for both predictions;
* ``contrastive``: Contrastive Lift's slow-fast loss on an embedding head + the semantic head.
"""

from __future__ import annotations

import torch

from ..config import Config
from ..losses import clustering, contrastive, reconstruction, segmentation
from ..losses import geometry as geometry_losses
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
    if config.loss.segmentation_loss == "nll":
        seg = {"opacity_nll": segmentation.opacity_nll(out["opacity"], rays.segment)}
    else:
        seg = {"opacity_bce": segmentation.opacity_bce(out["opacity"], rays.segment)}
    return {
        **seg,
        "semantic": segmentation.semantic_cross_entropy(out["semantics"], rays.semantic, rays.confidence),
    }


def clustering_terms(out: dict[str, torch.Tensor], rays: RayBatch, config: Config) -> dict[str, torch.Tensor]:
    """ClusteringSDF's terms on the batch (labels in ``rays.segment``, grouped per frame)."""
    c = config.clustering
    opacity = out["opacity"]
    labels, frames = rays.segment, rays.frame
    probabilities = torch.softmax(opacity, dim=-1)
    groups = clustering.make_groups(labels, frames)
    kept = probabilities[groups.keep]
    terms: dict[str, torch.Tensor] = {}
    if c.use_diff:
        terms["diff"] = clustering.differentiation_loss(clustering.cluster_centres(kept, groups), groups)
    if c.use_reg:
        terms["reg"] = clustering.regularization_loss(kept, groups, c.reg_axis)
    if c.compact > 0:
        terms["compact"] = clustering.regularization_loss(kept, groups, "rays")
    if c.use_onehot:
        terms["onehot"] = clustering.onehot_loss(opacity, labels)
    if config.mode == "semantic":
        if c.use_fgbg:  # channel 0 (void) is suppressed on every ray, as in the published semantic mode
            terms["fgbg"] = c.fg * opacity[:, 0].abs().mean()
        terms["sem"] = clustering.semantic_matching_loss(opacity[groups.keep], groups, rays.confidence[groups.keep])
        if c.sem_ray > 0:
            terms["sem_ray"] = clustering.semantic_ray_loss(opacity, labels, rays.confidence)
    else:
        if c.use_fgbg:
            terms["fgbg"] = clustering.foreground_background_loss(opacity, labels, c.bg, c.fg)
        if c.use_crossview:
            thing_semantic = torch.where(rays.instance > 0, rays.semantic, torch.full_like(rays.semantic, -1))
            terms["cross_view"] = clustering.cross_view_loss(probabilities, thing_semantic, frames)
    return terms


def semantic_head_terms(out: dict[str, torch.Tensor], rays: RayBatch) -> dict[str, torch.Tensor]:
    return {"semantic": segmentation.semantic_cross_entropy(out["semantics"], rays.semantic, rays.confidence)}


def contrastive_terms(out: dict[str, torch.Tensor], rays: RayBatch) -> dict[str, torch.Tensor]:
    """Contrastive Lift's slow-fast loss on thing rays (labels = per-view instance ids)."""
    things = torch.where(rays.instance > 0, rays.segment, torch.zeros_like(rays.segment))
    concentration, contrast = contrastive.slow_fast_loss(out["embedding"], out["embedding_slow"], things, rays.frame, rays.confidence)
    return {"concentration": concentration, "contrastive": contrast}


def mode_terms(out: dict[str, torch.Tensor], rays: RayBatch, config: Config) -> dict[str, torch.Tensor]:
    """The segmentation terms of the run's mode."""
    if config.mode == "objectsdf":
        return objectsdf_terms(out, rays, config)
    if config.mode == "contrastive":
        return {**contrastive_terms(out, rays), **semantic_head_terms(out, rays)}
    terms = clustering_terms(out, rays, config)
    if config.mode == "panoptic":
        terms.update(semantic_head_terms(out, rays))
    return terms


WEIGHT_NAMES = {
    "rgb": ("loss", "rgb"),
    "depth": ("loss", "depth"),
    "normal_l1": ("loss", "normal_l1"),
    "normal_cos": ("loss", "normal_cos"),
    "eikonal": ("loss", "eikonal"),
    "smooth": ("loss", "smooth"),
    "collision": ("loss", "collision"),
    "opacity_bce": ("loss", "opacity_bce"),
    "opacity_nll": ("loss", "opacity_bce"),
    "semantic": ("loss", "semantic"),
    "diff": ("clustering", "diff"),
    "onehot": ("clustering", "onehot"),
    "reg": ("clustering", "reg"),
    "compact": ("clustering", "compact"),
    "sem": ("clustering", "sem"),
    "sem_ray": ("clustering", "sem_ray"),
    "cross_view": ("clustering", "cross_view"),
    "fgbg": None,  # lambda4 / lambda5 are applied inside the term
    "concentration": None,
    "contrastive": None,
}


def weighted_total(terms: dict[str, torch.Tensor], config: Config) -> torch.Tensor:
    """Sum of terms times their config weights (``WEIGHT_NAMES``; None = weight 1)."""
    total = None
    for name, value in terms.items():
        where = WEIGHT_NAMES[name]
        weight = 1.0 if where is None else getattr(getattr(config, where[0]), where[1])
        if weight == 0:
            continue
        total = value * weight if total is None else total + value * weight
    if total is None:
        raise ValueError("no loss terms")
    return total
