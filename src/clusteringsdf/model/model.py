"""The model: the object-compositional SDF field, its density, its samplers and their cached SDF
volume (and the sphere cloud of sphere-guided runs), rendering rays into :class:`RenderOutput`.

The model knows nothing of training methods: which outputs to render is the caller's
:class:`RenderRequest`, and state that belongs to a method (label votes, an EMA head) lives in the
method (:mod:`clusteringsdf.methods`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import Config
from ..sampling.rays import RayBatch
from .field import SDFField
from .outputs import RenderOutput, RenderRequest
from .rendering import composite, density_share_opacity, expected_distance, interval_lengths, laplace_density, object_opacity, render_weights
from .samplers import RaySamples, SdfVolume, build_samplers


CONTRIBUTING_WEIGHT = 1e-4  # samples below this volume-rendering weight are skipped at inference


class LaplaceDensity(nn.Module):
    """Learned Laplace scale beta = |beta_param| + beta_min (VolSDF)."""

    def __init__(self, beta_init: float, beta_min: float) -> None:
        super().__init__()
        self.beta_param = nn.Parameter(torch.tensor(float(beta_init)))
        self.beta_min = beta_min

    @property
    def beta(self) -> torch.Tensor:
        return self.beta_param.abs() + self.beta_min


class Model(nn.Module):
    """Field + density + samplers.

    Args:
        config: the run's configuration (field, sampler, spheres and ``loss.segmentation_opacity``:
            how object opacities are defined, in training and at inference alike: "share"
            (:func:`density_share_opacity`, scene weights detached) or "occlusion" (ObjectSDF++'s
            :func:`object_opacity`)).
        bbox: (2, 3) normalised scene box.
        num_classes: semantic classes.
        channels: SDF channels C (the method decides; usually ``config.field.channels``).
        object_radius: initial object sphere radius (see :class:`SDFField`).
    """

    def __init__(self, config: Config, bbox: torch.Tensor, num_classes: int, channels: int, object_radius: float | None = None) -> None:
        super().__init__()
        self.opacity_kind = config.loss.segmentation_opacity
        self.field = SDFField(dataclasses.replace(config.field, channels=channels), bbox, num_classes, object_radius)
        self.density = LaplaceDensity(config.field.beta_init, config.field.beta_min)
        self.register_buffer("bbox", torch.as_tensor(bbox, dtype=torch.float32).clone())
        self.volume = SdfVolume(self.bbox, config.sampler.grid_resolution)
        samplers = build_samplers(config, self.volume, self.scene_sdf, self.bbox)
        self.train_sampler, self.eval_sampler = samplers.train, samplers.eval
        self.spheres = samplers.spheres  # a trainable module of sphere-guided runs, else None

    @torch.no_grad()
    def scene_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """(N,) scene SDF without gradients."""
        return self.field.geometry(points).scene_sdf

    @torch.no_grad()
    def refresh_volume(self) -> None:
        """Re-evaluate the cached SDF volume used by the samplers."""
        self.volume.update(self.scene_sdf)

    def sample(self, rays: RayBatch, train: bool, generator: torch.Generator | None) -> RaySamples:
        """Where the rays are evaluated (the training or the evaluation sampler)."""
        sampler = self.train_sampler if train else self.eval_sampler
        if sampler.uses_volume and not self.volume.is_ready:
            self.refresh_volume()
        return sampler.sample(rays, float(self.density.beta.detach()), train, generator)

    def forward(self, rays: RayBatch, request: RenderRequest, train: bool, generator: torch.Generator | None = None) -> RenderOutput:
        """Render a batch of R rays (see :class:`RenderOutput` for what comes back).

        With gradients (training) every sample goes through every requested head. Without
        (inference), the geometry is evaluated at every sample for the weights, and the Jacobian
        (normals), the heads and the object opacities only at samples whose weight exceeds
        ``CONTRIBUTING_WEIGHT`` (a few per ray): the same pictures, several times faster.
        """
        samples = self.sample(rays, train, generator)
        z = samples.z
        r, s = z.shape
        points = rays.origins.unsqueeze(1) + z.unsqueeze(-1) * rays.directions.unsqueeze(1)  # (R, S, 3)
        dense = torch.is_grad_enabled()
        need_gradient = request.normals or self.field.config.color_uses_normal
        geometry = self.field.geometry(points.reshape(-1, 3), with_jacobian=need_gradient and dense)
        channel_sdf = geometry.sdf.view(r, s, -1)
        scene_sdf = channel_sdf.min(dim=-1).values
        beta = self.density.beta
        deltas = interval_lengths(z, valid=samples.valid)
        weights, transmittance = render_weights(laplace_density(scene_sdf, beta), deltas)
        out = RenderOutput(rgb=weights.new_zeros(r, 3), depth=weights.new_zeros(r), weights=weights, z=z)
        if request.normals:
            out.surface_crossing = (scene_sdf > 0).any(-1) & (scene_sdf < 0).any(-1)
        # The infinite last interval lets a ray that hits nothing inside the box end on its last
        # sample for colour; for ownership ("occlusion" opacities) it would hand that ray to every
        # channel at once.
        finite = torch.cat([deltas[:, :-1], torch.zeros_like(deltas[:, -1:])], dim=-1)
        if dense:
            self._compose_dense(out, rays, request, points, geometry, channel_sdf, beta, finite, transmittance, generator)
        else:
            self._compose_sparse(out, rays, request, points, geometry, channel_sdf, beta, finite, transmittance)
        return out

    def _compose_dense(self, out, rays, request, points, geometry, channel_sdf, beta, finite, transmittance, generator) -> None:
        """Every sample through every requested head (gradients flow to all of them)."""
        weights = out.weights
        r, s = weights.shape
        flat_points = points.reshape(-1, 3)
        directions = rays.directions.unsqueeze(1).expand(r, s, 3).reshape(-1, 3)
        gradient = geometry.scene_gradient() if geometry.jacobian is not None else None
        out.rgb = composite(weights, self.field.color(flat_points, directions, gradient, geometry.feature).view(r, s, 3))
        out.depth = expected_distance(weights, out.z) * rays.dz  # after the colour: autograd sums into the weights in this order
        if request.normals:
            unit = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)
            out.normal = torch.einsum("rji,rj->ri", rays.cam_to_world, composite(weights, unit.view(r, s, 3)))
        if request.opacity and self.opacity_kind == "share":
            out.opacity = density_share_opacity(channel_sdf, beta, weights.detach())
        elif request.opacity:
            out.opacity = object_opacity(channel_sdf, beta, finite, transmittance)
        detached = weights.detach()
        if request.semantics:
            probabilities = torch.softmax(self.field.semantic_logits(geometry.feature), dim=-1).view(r, s, -1)
            out.semantics = composite(detached, probabilities) / (detached.sum(-1, keepdim=True) + 1e-6)
        if request.embedding:
            out.embedding = composite(detached, self.field.embedding(geometry.feature).view(r, s, -1))
        for name, head, width in request.feature_heads:
            out.extras[name] = composite(detached, head(geometry.feature.detach()).view(r, s, width))
        if request.surface_points:
            pick = torch.randint(0, s, (r, 1), device=points.device, generator=generator)
            out.surface_points = points.gather(1, pick.unsqueeze(-1).expand(r, 1, 3)).squeeze(1).detach()

    def _compose_sparse(self, out, rays, request, points, geometry, channel_sdf, beta, finite, transmittance) -> None:
        """Heads, Jacobian and opacities only at the contributing samples, accumulated per ray."""
        weights = out.weights
        r, s = weights.shape
        active = (weights.reshape(-1) > CONTRIBUTING_WEIGHT).nonzero().squeeze(-1)  # (A,) flat sample index
        ray = active // s
        w = weights.reshape(-1)[active].unsqueeze(-1)  # (A, 1)

        def accumulate(values: torch.Tensor) -> torch.Tensor:
            """(A, D) per-sample values -> (R, D) weighted sums per ray."""
            return values.new_zeros(r, values.shape[-1]).index_add_(0, ray, w * values)

        feature = geometry.feature[active]
        at = points.reshape(-1, 3)[active]
        gradient = None
        if request.normals or self.field.config.color_uses_normal:
            gradient = self.field.geometry(at, with_jacobian=True).scene_gradient()
        out.rgb = accumulate(self.field.color(at, rays.directions[ray], gradient, feature))
        out.depth = expected_distance(weights, out.z) * rays.dz
        if request.normals:
            unit = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)
            out.normal = torch.einsum("rji,rj->ri", rays.cam_to_world, accumulate(unit))
        if request.opacity:
            sdf = channel_sdf.reshape(r * s, -1)[active]
            if self.opacity_kind == "share":
                out.opacity = accumulate(torch.softmax(-sdf / beta, dim=-1))
            else:  # T_i (1 - exp(-sigma(s_k,i) delta_i)), summed per ray
                alpha = 1.0 - torch.exp(-laplace_density(sdf, beta) * finite.reshape(-1)[active].unsqueeze(-1))
                t = transmittance.reshape(-1)[active].unsqueeze(-1)
                out.opacity = (t * alpha).new_zeros(r, sdf.shape[-1]).index_add_(0, ray, t * alpha)
        if request.semantics:
            total = weights.sum(-1, keepdim=True) + 1e-6
            out.semantics = accumulate(torch.softmax(self.field.semantic_logits(feature), dim=-1)) / total
        if request.embedding:
            out.embedding = accumulate(self.field.embedding(feature))
        for name, head, width in request.feature_heads:
            out.extras[name] = accumulate(head(feature))
