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
        """Render a batch of R rays (see :class:`RenderOutput` for what comes back)."""
        samples = self.sample(rays, train, generator)
        z = samples.z
        r, s = z.shape
        points = rays.origins.unsqueeze(1) + z.unsqueeze(-1) * rays.directions.unsqueeze(1)  # (R, S, 3)
        need_gradient = request.normals or self.field.config.color_uses_normal
        geometry = self.field.geometry(points.reshape(-1, 3), with_jacobian=need_gradient)
        channel_sdf = geometry.sdf.view(r, s, -1)
        scene_sdf = channel_sdf.min(dim=-1).values
        beta = self.density.beta
        deltas = interval_lengths(z, valid=samples.valid)
        weights, transmittance = render_weights(laplace_density(scene_sdf, beta), deltas)
        directions = rays.directions.unsqueeze(1).expand(r, s, 3).reshape(-1, 3)
        gradient = geometry.scene_gradient() if need_gradient else None
        flat_points = points.reshape(-1, 3)
        # Without gradients, the heads run only where a sample contributes (typically a few per ray).
        contributing = None
        if not torch.is_grad_enabled():
            contributing = (weights.reshape(-1) > 1e-4).nonzero().squeeze(-1)

        def per_sample(head, width: int) -> torch.Tensor:
            if contributing is None:
                return head(slice(None)).view(r, s, width)
            values = torch.zeros(r * s, width, dtype=weights.dtype, device=weights.device)
            if contributing.numel() > 0:  # rays that see nothing (e.g. looking out of the scene box)
                values[contributing] = head(contributing)
            return values.view(r, s, width)

        rgb_samples = per_sample(
            lambda i: self.field.color(flat_points[i], directions[i], None if gradient is None else gradient[i], geometry.feature[i]), 3
        )
        out = RenderOutput(rgb=composite(weights, rgb_samples), depth=expected_distance(weights, z) * rays.dz, weights=weights, z=z)
        if request.normals:
            unit = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)
            normal_world = composite(weights, unit.view(r, s, 3))
            out.normal = torch.einsum("rji,rj->ri", rays.cam_to_world, normal_world)
            out.surface_crossing = (scene_sdf > 0).any(-1) & (scene_sdf < 0).any(-1)
        if request.opacity and self.opacity_kind == "share":
            out.opacity = density_share_opacity(channel_sdf, beta, weights.detach())
        elif request.opacity:
            # The infinite last interval lets a ray that hits nothing inside the box end on its last
            # sample for colour; for ownership it would hand that ray to every channel at once.
            finite = torch.cat([deltas[:, :-1], torch.zeros_like(deltas[:, -1:])], dim=-1)
            out.opacity = object_opacity(channel_sdf, beta, finite, transmittance)
        detached = weights.detach()
        total = detached.sum(-1, keepdim=True) + 1e-6
        if request.semantics:
            probabilities = per_sample(lambda i: torch.softmax(self.field.semantic_logits(geometry.feature[i]), dim=-1), self.field.num_classes)
            out.semantics = composite(detached, probabilities) / total
        if request.embedding:
            width = self.field.config.embedding_dim
            out.embedding = composite(detached, per_sample(lambda i: self.field.embedding(geometry.feature[i]), width))
        for name, head, width in request.feature_heads:
            out.extras[name] = composite(detached, per_sample(lambda i, h=head: h(geometry.feature[i].detach()), width))
        if request.surface_points:
            pick = torch.randint(0, s, (r, 1), device=z.device, generator=generator)
            out.surface_points = points.gather(1, pick.unsqueeze(-1).expand(r, 1, 3)).squeeze(1).detach()
        return out
