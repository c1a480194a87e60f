"""The renderer: samples rays, evaluates the field and composites colour, depth, normals, object
opacities, semantics and embeddings (everything the losses and the inference code need)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import FieldConfig, SamplerConfig
from ..sampling.rays import RayBatch
from .field import SDFField
from .ray_samplers import DepthGuidedSampler, ErrorBoundedSampler, GridSampler, SdfVolume
from .rendering import (
    composite,
    density_share_opacity,
    expected_distance,
    interval_lengths,
    laplace_density,
    object_opacity,
    render_weights,
)


@dataclass
class RenderRequest:
    """Which outputs to compute beyond colour and depth."""

    normals: bool = False  # camera-frame normal map (needs the SDF gradient at every sample)
    opacity: bool = True  # (R, C) object opacities
    semantics: bool = True  # (R, K) rendered class probabilities
    embedding: bool = False  # (R, E) rendered instance embedding
    surface_points: bool = False  # one random sample per ray, for the eikonal term


class LaplaceDensity(nn.Module):
    """Learned Laplace scale beta = |beta_param| + beta_min (VolSDF)."""

    def __init__(self, beta_init: float, beta_min: float) -> None:
        super().__init__()
        self.beta_param = nn.Parameter(torch.tensor(float(beta_init)))
        self.beta_min = beta_min

    @property
    def beta(self) -> torch.Tensor:
        return self.beta_param.abs() + self.beta_min


class Renderer(nn.Module):
    """Field + density + ray sampler.

    Args:
        field_config, sampler_config: network and sampler settings.
        bbox: (2, 3) normalised scene box.
        num_classes: semantic classes.
        object_radius: initial object sphere radius (see :class:`SDFField`).
        opacity_kind: how object opacities are defined, in training and at inference alike:
            "share" (:func:`density_share_opacity`, scene weights detached) or "occlusion"
            (ObjectSDF++'s :func:`object_opacity`). Always the run's ``loss.segmentation_opacity``
            (see :func:`build_renderer`), never a second default.
    """

    def __init__(
        self,
        field_config: FieldConfig,
        sampler_config: SamplerConfig,
        bbox: torch.Tensor,
        num_classes: int,
        object_radius: float | None = None,
        *,
        opacity_kind: str,
    ) -> None:
        super().__init__()
        self.opacity_kind = opacity_kind
        self.field = SDFField(field_config, bbox, num_classes, object_radius)
        self.density = LaplaceDensity(field_config.beta_init, field_config.beta_min)
        self.sampler_config = sampler_config
        self.register_buffer("bbox", torch.as_tensor(bbox, dtype=torch.float32).clone())
        # Contrastive baseline: an EMA copy of the embedding head (never optimised).
        self.slow_embedding_head = copy.deepcopy(self.field.embedding_head).requires_grad_(False)
        for module in self.slow_embedding_head.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()  # independent random init, as in Contrastive Lift
        # Votes of the training labels for the class of each channel (C, K); see channel_classes().
        self.register_buffer("channel_votes", torch.zeros(field_config.channels, num_classes))
        self.volume = SdfVolume(self.bbox, sampler_config.grid_resolution)
        self.grid_sampler = GridSampler(sampler_config, self.volume)
        kind = sampler_config.kind
        if kind == "error_bounded":
            self.train_sampler = self.eval_sampler = ErrorBoundedSampler(sampler_config, self.scene_sdf)
        elif kind == "depth":
            self.train_sampler, self.eval_sampler = DepthGuidedSampler(sampler_config, self.grid_sampler), self.grid_sampler
        else:
            self.train_sampler = self.eval_sampler = self.grid_sampler
        self.spheres = None  # SphereCloud when sphere-guided (attach_spheres)
        self.sphere_sampler = None

    def attach_spheres(self, cloud: nn.Module, samples: int) -> None:
        """Sphere-guided marching: samples inside the union of sphere intervals (grid fallback)."""
        from ..sampling.spheres import SphereSampler

        self.spheres = cloud
        self.sphere_sampler = SphereSampler(cloud, samples, self.grid_sampler)

    def _apply(self, fn, recurse=True):  # keep the cached volume on the module's device
        super()._apply(fn, recurse)
        self.volume.bbox = self.bbox
        if self.volume.values is not None:
            self.volume.values = fn(self.volume.values)
        return self

    @torch.no_grad()
    def vote(self, opacity: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, decay: float) -> None:
        """Accumulate training-label votes: each ray votes for its label in its arg-max channel.

        opacity (R, C); labels (R,) semantic classes (<= 0 ignored); weight (R,) e.g. confidence.
        """
        self.channel_votes.mul_(decay)
        keep = (labels > 0) & (labels < self.channel_votes.shape[1])
        channel = opacity.detach().argmax(-1)
        self.channel_votes.index_put_((channel[keep], labels[keep]), weight[keep].to(self.channel_votes.dtype), accumulate=True)

    def channel_classes(self) -> torch.Tensor:
        """(C,) class voted for each channel by the training labels, -1 where it got no votes."""
        classes = self.channel_votes.argmax(-1)
        return torch.where(self.channel_votes.sum(-1) > 0, classes, torch.full_like(classes, -1))

    def observed_classes(self) -> torch.Tensor:
        """(K,) classes that occur in the training labels seen so far (all True before any vote):
        a class the segmenter never produced cannot be predicted."""
        seen = self.channel_votes.sum(0) > 0
        return seen if bool(seen.any()) else torch.ones_like(seen)

    @torch.no_grad()
    def scene_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """(N,) scene SDF without gradients."""
        return self.field.geometry(points).scene_sdf

    @torch.no_grad()
    def refresh_volume(self) -> None:
        """Re-evaluate the cached SDF volume used by the grid sampler."""
        self.volume.update(self.scene_sdf)

    def sample(self, rays: RayBatch, train: bool, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sample distances (R, S) and an optional (R, S-1) mask of intervals inside the sampled region."""
        beta = float(self.density.beta.detach())
        sampler = self.train_sampler if train else self.eval_sampler
        if self.volume.values is None and not isinstance(sampler, ErrorBoundedSampler):
            self.refresh_volume()
        if self.sphere_sampler is not None and (train or self.sphere_sampler.use_at_eval):
            return self.sphere_sampler.sample(rays, train, generator, beta)
        if isinstance(sampler, DepthGuidedSampler):
            distance = None if rays.depth is None else torch.where(rays.depth > 0, rays.depth / rays.dz, torch.zeros_like(rays.depth))
            return sampler.sample(rays.origins, rays.directions, rays.near, rays.far, beta, train, generator, distance), None
        return sampler.sample(rays.origins, rays.directions, rays.near, rays.far, beta, train, generator), None

    def forward(self, rays: RayBatch, request: RenderRequest, train: bool, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render a batch of rays.

        Returns a dict with: rgb (R, 3), depth (R,) z-depth in normalised units, weights (R, S),
        z (R, S), and as requested normal (R, 3) camera frame, opacity (R, C), semantics (R, K)
        probabilities, embedding (R, E), surface_points (R, 3).
        """
        z, valid = self.sample(rays, train, generator)
        r, s = z.shape
        points = rays.origins.unsqueeze(1) + z.unsqueeze(-1) * rays.directions.unsqueeze(1)  # (R, S, 3)
        need_gradient = request.normals or self.field.config.color_uses_normal
        geometry = self.field.geometry(points.reshape(-1, 3), with_jacobian=need_gradient)
        channel_sdf = geometry.sdf.view(r, s, -1)
        scene_sdf = channel_sdf.min(dim=-1).values
        beta = self.density.beta
        deltas = interval_lengths(z, valid=valid)
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
        out: dict[str, torch.Tensor] = {
            "rgb": composite(weights, rgb_samples),
            "depth": expected_distance(weights, z) * rays.dz,
            "weights": weights,
            "z": z,
        }
        if request.normals:
            unit = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)
            normal_world = composite(weights, unit.view(r, s, 3))
            out["normal"] = torch.einsum("rji,rj->ri", rays.cam_to_world, normal_world)
            out["surface_crossing"] = ((scene_sdf > 0).any(-1) & (scene_sdf < 0).any(-1))
        if request.opacity and self.opacity_kind == "share":
            out["opacity"] = density_share_opacity(channel_sdf, beta, weights.detach())
        elif request.opacity:
            # The infinite last interval lets a ray that hits nothing inside the box end on its last
            # sample for colour; for ownership it would hand that ray to every channel at once.
            finite = torch.cat([deltas[:, :-1], torch.zeros_like(deltas[:, -1:])], dim=-1)
            out["opacity"] = object_opacity(channel_sdf, beta, finite, transmittance)
        detached = weights.detach()
        total = detached.sum(-1, keepdim=True) + 1e-6
        if request.semantics:
            probabilities = per_sample(lambda i: torch.softmax(self.field.semantic_logits(geometry.feature[i]), dim=-1), self.field.num_classes)
            out["semantics"] = composite(detached, probabilities) / total
        if request.embedding:
            width = self.field.config.embedding_dim
            out["embedding"] = composite(detached, per_sample(lambda i: self.field.embedding(geometry.feature[i]), width))
            if self.training:
                slow = per_sample(lambda i: self.slow_embedding_head(geometry.feature[i].detach()), width)
                out["embedding_slow"] = composite(detached, slow)
        if request.surface_points:
            pick = torch.randint(0, s, (r, 1), device=z.device, generator=generator)
            out["surface_points"] = points.gather(1, pick.unsqueeze(-1).expand(r, 1, 3)).squeeze(1).detach()
        return out


def build_renderer(config, bbox: torch.Tensor, num_classes: int, object_radius: float | None = None) -> Renderer:
    """The renderer a run's config describes (with its sphere cloud when sphere-guided)."""
    renderer = Renderer(config.field, config.sampler, bbox, num_classes, object_radius, opacity_kind=config.loss.segmentation_opacity)
    if config.sampler.kind == "spheres":
        from ..sampling.spheres import SphereCloud

        renderer.attach_spheres(SphereCloud(config.spheres, bbox, config.train.iterations), config.sampler.sphere_samples)
    return renderer
