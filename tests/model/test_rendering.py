"""Volume rendering: weights, object opacities, samplers."""

import torch

from clusteringsdf.config import SamplerConfig
from clusteringsdf.model.samplers import ErrorBoundedSampler, sample_pdf, stratified
from clusteringsdf.sampling.rays import RayBatch
from clusteringsdf.model.rendering import interval_lengths, laplace_density, object_opacity, render_weights


def test_object_opacities_are_bounded_by_the_accumulated_weight():
    torch.manual_seed(0)
    rays, samples, channels = 64, 40, 6
    z = torch.sort(torch.rand(rays, samples) * 3, dim=-1).values
    channel_sdf = torch.randn(rays, samples, channels) * 0.3
    scene_sdf = channel_sdf.min(-1).values
    beta = torch.tensor(0.05)
    deltas = interval_lengths(z)
    weights, transmittance = render_weights(laplace_density(scene_sdf, beta), deltas)
    opacity = object_opacity(channel_sdf, beta, deltas, transmittance)
    accumulated = weights.sum(-1)
    assert torch.all(opacity >= 0) and torch.all(opacity <= 1 + 1e-6)
    assert torch.all(accumulated <= 1 + 1e-6)
    assert torch.all(opacity <= accumulated.unsqueeze(-1) + 1e-6)


def test_single_object_opacity_equals_the_weight_sum():
    z = torch.linspace(0, 2, 50).expand(3, 50)
    sdf = (1.0 - z).unsqueeze(-1)  # one channel: a plane at distance 1
    beta = torch.tensor(0.02)
    deltas = interval_lengths(z, last=0.04)
    weights, transmittance = render_weights(laplace_density(sdf[..., 0], beta), deltas)
    opacity = object_opacity(sdf, beta, deltas, transmittance)
    assert torch.allclose(opacity[:, 0], weights.sum(-1), atol=1e-6)
    depth = (weights * z).sum(-1) / weights.sum(-1)
    assert torch.allclose(depth, torch.ones(3), atol=0.03)


def test_sample_pdf_follows_the_weights_and_stays_in_range():
    bins = torch.linspace(0, 1, 11).expand(2, 11)
    weights = torch.zeros(2, 10)
    weights[:, 7] = 1.0
    samples = sample_pdf(bins, weights, 32, jitter=True, generator=torch.Generator().manual_seed(0))
    assert torch.all(samples >= 0.7 - 1e-6) and torch.all(samples <= 0.8 + 1e-6)
    assert torch.all(samples[:, 1:] >= samples[:, :-1])


def test_error_bounded_sampler_concentrates_samples_at_the_surface():
    config = SamplerConfig(eb_samples_eval=64, eb_samples=32, eb_extra=8, eb_max_iters=3)
    sampler = ErrorBoundedSampler(config, lambda p: 1.0 - p[:, 2])  # plane z = 1
    rays = RayBatch(
        origins=torch.zeros(4, 3), directions=torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3), cam_to_world=torch.eye(3).expand(4, 3, 3),
        dz=torch.ones(4), near=torch.full((4,), 0.01), far=torch.full((4,), 3.0), frame=torch.zeros(4, dtype=torch.int64),
        pixel=torch.zeros(4, 2, dtype=torch.int64),
    )
    z = sampler.sample(rays, beta=0.01, train=False).z
    assert z.shape == (4, 32 + 8 + 2)
    assert torch.all(z[:, 1:] >= z[:, :-1])
    close = ((z - 1.0).abs() < 0.1).float().sum(-1)
    assert torch.all(close >= 20)


def test_stratified_covers_the_interval():
    near, far = torch.tensor([0.5]), torch.tensor([2.5])
    z = stratified(near, far, 8, jitter=False, generator=None)
    assert torch.allclose(z, 0.5 + (torch.arange(8) + 0.5) / 8 * 2.0)


def test_rendered_opacity_at_inference_is_the_kind_the_run_was_trained_on():
    """Render-time channels must be the opacities the segmentation losses shaped: with "share", the
    channels split the accumulated weight exactly; with "occlusion", a channel whose surface lies
    just behind another's also collects opacity, so the channels sum to more."""
    from clusteringsdf.config import preset
    from clusteringsdf.inference.render import camera_rays
    from clusteringsdf.model import Model, RenderRequest

    bbox = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    pose = torch.eye(4)
    pose[2, 3] = -0.9  # inside the box, looking along +z at the initial object spheres
    intrinsics = torch.tensor([[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]])
    sums = {}
    for kind in ("share", "occlusion"):
        config = preset("tiny").with_values({"field.object_opacity": kind})
        torch.manual_seed(0)
        model = Model(config, bbox, num_classes=4, channels=config.field.channels).eval()
        assert model.opacity_kind == kind
        rays = camera_rays(pose, intrinsics, (8, 8), bbox, near=config.sampler.near)
        with torch.no_grad():
            out = model(rays, RenderRequest(opacity=True, semantics=False), train=False)
        sums[kind] = (out.opacity.sum(-1), out.weights.sum(-1))
    opacity_sum, weight_sum = sums["share"]
    assert torch.allclose(opacity_sum, weight_sum, atol=1e-4)
    opacity_sum, weight_sum = sums["occlusion"]
    assert bool((opacity_sum > weight_sum + 1e-3).any())
