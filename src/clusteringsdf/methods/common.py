"""Loss terms every method shares: reconstruction (colour, depth, normals), geometry (eikonal,
smoothness, collision) and the semantic head's cross entropy. Each returns named, weighted terms."""

from __future__ import annotations

import torch

from ..config import LossConfig
from ..losses import geometry as geometry_losses
from ..losses import reconstruction, segmentation
from ..model import Model, RenderOutput
from ..sampling.rays import RayBatch
from .terms import Term, Terms


def reconstruction_terms(out: RenderOutput, rays: RayBatch, loss: LossConfig) -> Terms:
    """Colour, depth and normal terms on the rendered rays."""
    terms = {"rgb": Term(reconstruction.rgb_l1(out.rgb, rays.rgb), loss.rgb)}
    if rays.depth is not None and loss.depth > 0:
        if loss.depth_mode == "ssi":
            value = reconstruction.depth_scale_shift_invariant(out.depth, rays.depth, rays.frame)
        else:
            value = reconstruction.depth_l1(out.depth, rays.depth)
        terms["depth"] = Term(value, loss.depth)
    if out.normal is not None and rays.normal is not None:
        l1, cos = reconstruction.normal_losses(out.normal, rays.normal, out.surface_crossing)
        terms["normal_l1"] = Term(l1, loss.normal_l1)
        terms["normal_cos"] = Term(cos, loss.normal_cos)
    return terms


def geometry_terms(model: Model, out: RenderOutput, loss: LossConfig, progress: float, *, generator: torch.Generator) -> Terms:
    """Eikonal (every channel), smoothness (every channel) and collision on regulariser points.

    Points: ``eikonal_points`` uniform in the scene box, one rendered sample per ray (near the
    surface), and a jittered neighbour of each of those for the smoothness term.
    """
    bbox = model.bbox
    device = bbox.device
    uniform = bbox[0] + (bbox[1] - bbox[0]) * torch.rand(loss.eikonal_points, 3, device=device, generator=generator)
    surface = out.surface_points
    jitter = (torch.rand(surface.shape, device=device, generator=generator) * 2 - 1) * loss.smooth_epsilon
    points = torch.cat([uniform, surface, surface + jitter])
    geometry = model.field.geometry(points, with_jacobian=True)
    n_u, n_s = uniform.shape[0], surface.shape[0]
    jac = geometry.jacobian
    terms = {
        "eikonal": Term(geometry_losses.eikonal(jac[: n_u + n_s]), loss.eikonal),
        "smooth": Term(geometry_losses.smoothness(jac[n_u : n_u + n_s], jac[n_u + n_s :]), loss.smooth),
    }
    if loss.collision > 0 and progress >= loss.collision_start:
        terms["collision"] = Term(geometry_losses.collision(geometry.sdf), loss.collision)
    return terms


def semantic_head_terms(out: RenderOutput, rays: RayBatch, loss: LossConfig) -> Terms:
    """The semantic head's confidence-weighted cross entropy against the labels' classes."""
    return {"semantic": Term(segmentation.semantic_cross_entropy(out.semantics, rays.targets["semantic"], rays.targets["confidence"]), loss.semantic)}
