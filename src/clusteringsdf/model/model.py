"""The model: the object-compositional SDF field, its density, its samplers and their cached SDF
volume (and the sphere cloud of sphere-guided runs), rendering rays into :class:`RenderOutput`.

The model knows nothing of training methods: which outputs to render is the caller's
:class:`RenderRequest`, and state that belongs to a method (label votes, an EMA head) lives in the
method (:mod:`clusteringsdf.methods`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from ..config import Config
from ..sampling.rays import RayBatch
from .field import SDFField
from .outputs import RenderOutput, RenderRequest
from .rendering import composite, density_share_opacity, expected_distance, interval_lengths, laplace_density, object_opacity, render_weights
from .samplers import RaySamples, SdfVolume, build_samplers, first_crossing


SURFACE_COARSE_STEPS = 96  # cached-volume lookups per ray to find its first surface at inference
SURFACE_SEARCH_POINTS = 5  # field evaluations per ray around the volume's crossing (one voxel each side)
SURFACE_CLEAR_POINTS = 16  # field evaluations along a ray the volume sees no surface on
SURFACE_STEPS = 2  # regula-falsi steps on the field to refine it


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
        config: the run's configuration (its field, sampler and spheres sections; ``field.object_opacity``
            says how object opacities are defined, in training and at inference alike: "share"
            (:func:`density_share_opacity`, scene weights detached) or "occlusion" (ObjectSDF++'s
            :func:`object_opacity`)).
        bbox: (2, 3) normalised scene box.
        num_classes: semantic classes.
        channels: SDF channels C (the method decides; usually ``config.field.channels``).
        object_radius: initial object sphere radius (see :class:`SDFField`).
    """

    def __init__(self, config: Config, bbox: torch.Tensor, num_classes: int, channels: int, *, object_radius: float | None = None) -> None:
        super().__init__()
        self.opacity_kind = config.field.object_opacity
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
        """Volume-render a batch of R rays (see :class:`RenderOutput` for what comes back): the
        training path, every sample through every requested head."""
        samples = self.sample(rays, train, generator)
        z = samples.z
        r, s = z.shape
        points = rays.origins.unsqueeze(1) + z.unsqueeze(-1) * rays.directions.unsqueeze(1)  # (R, S, 3)
        flat_points = points.reshape(-1, 3)
        need_gradient = request.normals or self.field.config.color_uses_normal
        geometry = self.field.geometry(flat_points, with_jacobian=need_gradient)
        channel_sdf = geometry.sdf.view(r, s, -1)
        scene_sdf = channel_sdf.min(dim=-1).values
        beta = self.density.beta
        deltas = interval_lengths(z, valid=samples.valid)
        weights, transmittance = render_weights(laplace_density(scene_sdf, beta), deltas)
        directions = rays.directions.unsqueeze(1).expand(r, s, 3).reshape(-1, 3)
        gradient = geometry.scene_gradient() if need_gradient else None
        rgb = composite(weights, self.field.color(flat_points, directions, gradient, geometry.feature).view(r, s, 3))
        # the depth after the colour: autograd sums into the weights in this order (repeatable runs)
        out = RenderOutput(rgb=rgb, depth=expected_distance(weights, z) * rays.dz, weights=weights, z=z)
        if request.normals:
            out.normal = _camera_normals(gradient, rays.cam_to_world, lambda unit: composite(weights, unit.view(r, s, 3)))
            out.surface_crossing = (scene_sdf > 0).any(-1) & (scene_sdf < 0).any(-1)
        if request.opacity and self.opacity_kind == "share":
            out.opacity = density_share_opacity(channel_sdf, beta, weights.detach())
        elif request.opacity:
            # The infinite last interval lets a ray that hits nothing inside the box end on its last
            # sample for colour; for ownership it would hand that ray to every channel at once.
            finite = torch.cat([deltas[:, :-1], torch.zeros_like(deltas[:, -1:])], dim=-1)
            out.opacity = object_opacity(channel_sdf, beta, finite, transmittance)
        detached = weights.detach()
        self._feature_heads(out, request, geometry.feature, lambda values: composite(detached, values.view(r, s, -1)), weight_sum=detached.sum(-1, keepdim=True))
        if request.surface_points:
            pick = torch.randint(0, s, (r, 1), device=z.device, generator=generator)
            out.surface_points = points.gather(1, pick.unsqueeze(-1).expand(r, 1, 3)).squeeze(1).detach()
        return out

    @torch.no_grad()
    def render(self, rays: RayBatch, request: RenderRequest) -> RenderOutput:
        """Inference rendering of R rays, several times cheaper than :meth:`forward`.

        Once trained, the density is a sharp step at the zero level (beta ~ 1e-3), so a ray's
        colour, depth, normal, classes and channel ownership are those of its first surface point.
        That point is found from the cached SDF volume (the first outside-to-inside crossing of its
        coarse lookups, no network), searched for on the field at ``SURFACE_SEARCH_POINTS`` points
        from one volume voxel before to one after that crossing (the trilinear volume is smoother
        than the field: for about 40% of rays the field's surface lies before the volume's), and
        refined by ``SURFACE_STEPS`` regula-falsi steps (one plain evaluation per ray each); the
        heads and the normal (the analytic Jacobian) are then evaluated at that one point. Rays the
        volume sees no surface on are searched on the field at ``SURFACE_CLEAR_POINTS`` points along
        their whole length, and end on the box when it has none either (where volume rendering's
        infinite last interval puts their weight). The rest (the field has no crossing near the
        volume's: parts thinner than the search spacing, grazing rays; or a ray starting inside) are
        volume-rendered with :meth:`forward`. Outputs are those of :meth:`forward`; ``weights`` and ``z`` hold one sample per ray (weight 1 at the surface)
        for surface rays and the sum of weights and the expected distance for the others.
        """
        if not self.volume.is_ready:
            self.refresh_volume()
        bins, coarse = self.volume.along(rays, SURFACE_COARSE_STEPS)
        crossed, first = first_crossing(coarse)
        voxel = self.volume.voxel
        t_lo = torch.maximum(bins.gather(1, first).squeeze(1) - voxel, rays.near)
        t_hi = torch.minimum(bins.gather(1, first + 1).squeeze(1) + voxel, rays.far)
        found, t_a, t_b, s_a, s_b = self._first_crossing(rays, t_lo, t_hi, SURFACE_SEARCH_POINTS)
        found &= crossed
        # Rays the volume sees no surface on at all (a thin part it smoothed away, or nothing): the
        # field is searched along the whole ray, as the volume renderer's uniform samples would.
        clear = (coarse > 0).all(-1).nonzero().squeeze(-1)
        if clear.numel():
            hit, *bracket = self._first_crossing(rays.select(clear), rays.near[clear], rays.far[clear], SURFACE_CLEAR_POINTS)
            found[clear] = hit
            for full, part in zip((t_a, t_b, s_a, s_b), bracket):
                full[clear] = part
        for _ in range(SURFACE_STEPS):  # regula falsi on the bracket [t_a, t_b]
            t_m = t_a + (t_b - t_a) * s_a / (s_a - s_b).clamp_min(1e-12)
            s_m = self._scene_sdf_along(rays, t_m)
            outside = s_m > 0
            t_a, s_a = torch.where(outside, t_m, t_a), torch.where(outside, s_m, s_a)
            t_b, s_b = torch.where(outside, t_b, t_m), torch.where(outside, s_b, s_m)
        t = t_a + (t_b - t_a) * s_a / (s_a - s_b).clamp_min(1e-12)
        # Nothing found on a clear ray: it ends on the box, where volume rendering's infinite last
        # interval puts its weight.
        if clear.numel():
            empty = clear[~found[clear]]
            t[empty] = rays.far[empty]
            found[empty] = True
        surface = found.nonzero().squeeze(-1)
        rest = (~found).nonzero().squeeze(-1)
        out = _scattered(self._render_points(rays.select(surface), t[surface], request), surface, len(rays))
        if rest.numel():
            volume = self.forward(rays.select(rest), request, train=False)
            out.rgb[rest], out.depth[rest] = volume.rgb, volume.depth
            out.weights[rest] = volume.weights.sum(-1, keepdim=True)
            out.z[rest] = (volume.depth / rays.dz[rest]).unsqueeze(-1)
            for name in ("normal", "surface_crossing", "opacity", "semantics", "embedding"):
                value = getattr(volume, name)
                if value is not None:
                    getattr(out, name)[rest] = value
            for name, value in volume.extras.items():
                out.extras[name][rest] = value
        return out

    def _first_crossing(self, rays: RayBatch, t_lo: torch.Tensor, t_hi: torch.Tensor, points: int) -> tuple[torch.Tensor, ...]:
        """The first outside-to-inside crossing of the scene SDF among ``points`` evenly spaced
        distances in [t_lo, t_hi] (R,): (found (R,) bool, t_a, t_b, s_a, s_b (R,)), the bracket and
        the field's values at its ends."""
        search = t_lo.unsqueeze(-1) + (t_hi - t_lo).unsqueeze(-1) * torch.linspace(0, 1, points, device=t_lo.device)
        r, k = search.shape
        where = rays.origins.unsqueeze(1) + search.unsqueeze(-1) * rays.directions.unsqueeze(1)
        values = self.field.geometry(where.reshape(-1, 3)).scene_sdf.view(r, k)
        found, step = first_crossing(values)
        t_a, t_b = search.gather(1, step).squeeze(1), search.gather(1, step + 1).squeeze(1)
        s_a, s_b = values.gather(1, step).squeeze(1), values.gather(1, step + 1).squeeze(1)
        return found, t_a, t_b, s_a, s_b

    def _scene_sdf_along(self, rays: RayBatch, t: torch.Tensor) -> torch.Tensor:
        """(R,) scene SDF at distance t (R,) along each ray."""
        return self.field.geometry(rays.origins + t.unsqueeze(-1) * rays.directions).scene_sdf

    def _render_points(self, rays: RayBatch, t: torch.Tensor, request: RenderRequest) -> RenderOutput:
        """Outputs of R rays from their surface points at distance t (R,) (one sample per ray, weight 1)."""
        points = rays.origins + t.unsqueeze(-1) * rays.directions
        need_gradient = request.normals or self.field.config.color_uses_normal
        geometry = self.field.geometry(points, with_jacobian=need_gradient)
        gradient = geometry.scene_gradient() if need_gradient else None
        out = RenderOutput(
            rgb=self.field.color(points, rays.directions, gradient, geometry.feature),
            depth=t * rays.dz,
            weights=torch.ones_like(t).unsqueeze(-1),
            z=t.unsqueeze(-1),
        )
        if request.normals:
            out.normal = _camera_normals(gradient, rays.cam_to_world, lambda unit: unit)
            out.surface_crossing = torch.ones_like(t, dtype=torch.bool)
        if request.opacity:  # each channel's share of the density at the surface (see density_share_opacity)
            out.opacity = torch.softmax(-geometry.sdf / self.density.beta, dim=-1)
        self._feature_heads(out, request, geometry.feature, lambda values: values)
        return out

    def _feature_heads(
        self, out: RenderOutput, request: RenderRequest, feature: torch.Tensor, blend: Callable[[torch.Tensor], torch.Tensor],
        *,
        weight_sum: torch.Tensor | None = None,
    ) -> None:
        """The requested semantics, embedding and extra heads of ``out`` from per-sample features
        (N, F): ``blend`` turns per-sample values (N, D) into per-ray ones (R, D); rendered class
        probabilities are divided by the rays' ``weight_sum`` (R, 1) when given."""
        if request.semantics:
            semantics = blend(torch.softmax(self.field.semantic_logits(feature), dim=-1))
            out.semantics = semantics if weight_sum is None else semantics / (weight_sum + 1e-6)
        if request.embedding:
            out.embedding = blend(self.field.embedding(feature))
        for name, head, _ in request.feature_heads:
            out.extras[name] = blend(head(feature.detach()))


def _camera_normals(gradient: torch.Tensor, cam_to_world: torch.Tensor, blend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(R, 3) camera-frame normals from per-sample SDF gradients (N, 3): unit gradients, blended into
    one world normal per ray by ``blend``, rotated by each ray's camera (R, 3, 3)."""
    unit = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)
    return torch.einsum("rji,rj->ri", cam_to_world, blend(unit))


def _scattered(out: RenderOutput, index: torch.Tensor, total: int) -> RenderOutput:
    """``out`` of len(index) rays placed at ``index`` among ``total`` rays (zeros elsewhere)."""

    def filled(values: torch.Tensor | None) -> torch.Tensor | None:
        if values is None:
            return None
        full = values.new_zeros(total, *values.shape[1:])
        full[index] = values
        return full

    values = {f.name: filled(getattr(out, f.name)) for f in dataclasses.fields(out) if f.name != "extras"}
    return RenderOutput(**values, extras={name: filled(value) for name, value in out.extras.items()})
