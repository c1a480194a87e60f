"""Sphere-guided sampling: exact intersections and unions against brute force, sample placement,
and a sphere cloud that stays inside the scene box through repulsion and resampling."""

from __future__ import annotations

import numpy as np
import torch

from clusteringsdf.config import FieldConfig, SpheresConfig
from clusteringsdf.model.field import SDFField
from clusteringsdf.sampling.spheres import SphereCloud, culled_ray_sphere_pairs, ray_sphere_pairs, samples_in_intervals, union_intervals
from clusteringsdf.training.hooks import SphereOptimisation


def brute_force_union(origin, direction, centres, radius, near, far):
    """Per ray: sorted disjoint intervals of the union, by a scalar sweep in numpy."""
    intervals = []
    for c in centres:
        oc = origin - c
        b = float(np.dot(direction, oc))
        disc = b * b - (float(np.dot(oc, oc)) - radius * radius)
        if disc <= 0:
            continue
        root = np.sqrt(disc)
        lo, hi = max(-b - root, near), min(-b + root, far)
        if hi > lo:
            intervals.append([lo, hi])
    intervals.sort()
    merged = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def random_case(seed: int, rays: int = 40, spheres: int = 60):
    rng = np.random.default_rng(seed)
    origins = rng.uniform(-1, 1, (rays, 3))
    directions = rng.normal(size=(rays, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    centres = rng.uniform(-1, 1, (spheres, 3))
    radius = float(rng.uniform(0.05, 0.3))
    near = rng.uniform(0.0, 0.3, rays)
    far = near + rng.uniform(0.5, 2.5, rays)
    return origins, directions, centres, radius, near, far


def test_interval_union_matches_brute_force():
    for seed in range(20):
        o, d, c, r, near, far = random_case(seed)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        ray, t_in, t_out = ray_sphere_pairs(t(o), t(d), t(c), r, near=t(near), far=t(far))
        union = union_intervals(ray, t_in, t_out, o.shape[0])
        for i in range(o.shape[0]):
            expected = brute_force_union(o[i], d[i], c, r, near[i], far[i])
            got = [[float(a), float(b)] for a, b, v in zip(union.start[i], union.end[i], union.valid[i]) if v]
            assert len(got) == len(expected), (seed, i, got, expected)
            assert np.allclose(got, expected, atol=1e-4), (seed, i)


def test_frustum_culling_finds_exactly_the_same_intervals():
    """Rays from a few cameras (shared origins, a cone of directions each): culled candidates
    give the same union as testing every sphere."""
    rng = np.random.default_rng(7)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    for cameras in (1, 3):
        apex = rng.uniform(-0.5, 0.5, (cameras, 3))
        axis = rng.normal(size=(cameras, 3))
        directions = np.repeat(axis, 50, axis=0) + rng.normal(scale=0.4, size=(cameras * 50, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        origins = np.repeat(apex, 50, axis=0)
        centres = rng.uniform(-1, 1, (400, 3))
        near, far = np.zeros(len(origins)), np.full(len(origins), 3.0)
        args, bounds = (t(origins), t(directions), t(centres), 0.12), {"near": t(near), "far": t(far)}
        full = union_intervals(*ray_sphere_pairs(*args, **bounds), len(origins))
        culled = union_intervals(*culled_ray_sphere_pairs(*args, **bounds), len(origins))
        assert torch.equal(full.valid, culled.valid)
        assert torch.allclose(full.start[full.valid], culled.start[culled.valid], atol=1e-5)
        assert torch.allclose(full.end[full.valid], culled.end[culled.valid], atol=1e-5)


def test_union_of_no_intersections_is_empty():
    union = union_intervals(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0), 5)
    assert union.start.shape == (5, 1) and not union.valid.any()


def test_samples_sum_to_the_budget_and_stay_inside_the_intervals():
    for seed in range(10):
        o, d, c, r, near, far = random_case(seed, rays=30, spheres=40)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        union = union_intervals(*ray_sphere_pairs(t(o), t(d), t(c), r, near=t(near), far=t(far)), o.shape[0])
        for jitter in (False, True):
            z, index = samples_in_intervals(union, 24, jitter, torch.Generator().manual_seed(seed))
            assert z.shape == (30, 24)
            hit = union.hit
            inside = (z >= union.start.gather(1, index) - 1e-5) & (z <= union.end.gather(1, index) + 1e-5)
            assert inside[hit].all()
            assert union.valid.gather(1, index)[hit].all()
            assert (z[hit][:, 1:] >= z[hit][:, :-1] - 1e-6).all()
            # allocation proportional to length: every interval longer than 2 strata gets samples
            lengths = (union.end - union.start) * union.valid
            total = lengths.sum(-1, keepdim=True)
            big = (lengths > 2 * total / 24) & union.valid
            counts = torch.zeros_like(lengths).scatter_add_(1, index, torch.ones_like(z))
            assert (counts[big] >= 1).all()
            assert torch.allclose(counts.sum(-1)[hit], torch.full_like(counts.sum(-1)[hit], 24.0))


def test_radius_schedule():
    cloud = SphereCloud(SpheresConfig(radius_max=0.2, radius_min=0.02, radius_end=0.5), torch.tensor([[-1.0] * 3, [1.0] * 3]), 1000)
    assert abs(cloud.radius_at(0) - 0.2) < 1e-9
    assert abs(cloud.radius_at(500) - 0.02) < 1e-6
    assert cloud.radius_at(900) == 0.02
    assert cloud.radius_at(250) < 0.2


def test_repulsion_and_resampling_keep_every_sphere_inside_the_box():
    torch.manual_seed(0)
    bbox = torch.tensor([[-0.6, -0.5, -0.3], [0.6, 0.5, 0.3]])
    config = SpheresConfig(count=300, radius_max=0.1, radius_min=0.05, warmup=0.0, resample_every=5, attraction_points=300, lr=0.05, repulsion=1.0)
    cloud = SphereCloud(config, bbox, iterations=40)
    with torch.no_grad():
        cloud.centres[:40] = torch.tensor([3.0, 0.0, 0.0])  # wanderers, all on one spot (repulsion edge case)
    field = SDFField(FieldConfig(channels=3, hidden_dim=16, feature_dim=8, grid_levels=2, grid_log2_size=10), bbox, 4)
    trainer = SphereOptimisation(cloud, field, config, torch.Generator().manual_seed(0))
    moved = trainer.resample()
    assert moved >= 40
    assert bool(cloud.inside().all())
    for iteration in range(1, 41):
        trainer.step(iteration)
        assert bool(cloud.inside().all()), iteration
        assert torch.isfinite(cloud.centres).all()


def test_pixels_project_into_the_frame():
    bbox = torch.tensor([[-1.0, -1.0, 1.0], [1.0, 1.0, 3.0]])
    cloud = SphereCloud(SpheresConfig(count=500, radius_max=0.05, radius_min=0.05), bbox, 10)
    pose = torch.eye(4)
    k = torch.tensor([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
    v, u = cloud.pixels(pose, k, (48, 64), 100, generator=torch.Generator().manual_seed(0))
    assert v.numel() == 100
    assert (u >= 0).all() and (u <= 63).all() and (v >= 0).all() and (v <= 47).all()


def _rays(origins: torch.Tensor, directions: torch.Tensor, near: torch.Tensor, far: torch.Tensor):
    from clusteringsdf.sampling.rays import RayBatch

    count = origins.shape[0]
    return RayBatch(
        origins=origins, directions=directions, cam_to_world=torch.eye(3).expand(count, 3, 3), dz=torch.ones(count),
        near=near, far=far, frame=torch.zeros(count, dtype=torch.int64), pixel=torch.zeros(count, 2, dtype=torch.int64),
    )


def _plane_volume(height: float):
    """Cached SDF volume of the plane z = height over the box [-1, 1]^3 (positive above)."""
    from clusteringsdf.config import SamplerConfig
    from clusteringsdf.model.samplers import GridSampler, SdfVolume

    volume = SdfVolume(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), 33)
    volume.update(lambda p: p[:, 2] - height)
    return GridSampler(SamplerConfig(), volume)


def test_first_surface_of_the_cached_volume():
    grid = _plane_volume(-0.25)
    origins = torch.tensor([[0.0, 0.0, 0.75], [0.3, -0.2, 0.5], [0.0, 0.0, 0.75]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.6, -0.8], [0.0, 0.0, 1.0]])  # the last looks away
    t = grid.first_surface(_rays(origins, directions, torch.zeros(3), torch.full((3,), 1.5)))
    assert torch.allclose(t[:2], torch.tensor([1.0, 0.75 / 0.8]), atol=1e-3)
    assert torch.isinf(t[2])


def test_rays_whose_surface_lies_outside_their_spheres_use_the_fallback():
    """A ray through a sphere in free space only must not render from that sphere (a hole)."""
    from clusteringsdf.model.samplers import SphereSampler

    grid = _plane_volume(-0.25)
    cloud = SphereCloud(SpheresConfig(count=2, radius_max=0.1, radius_min=0.1), torch.tensor([[-1.0] * 3, [1.0] * 3]), 10)
    with torch.no_grad():
        cloud.centres.copy_(torch.tensor([[0.0, 0.0, 0.3], [0.5, 0.0, -0.25]]))  # free space; on the plane
    origins = torch.tensor([[0.0, 0.0, 0.75], [0.5, 0.0, 0.75]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    rays = _rays(origins, directions, torch.zeros(2), torch.full((2,), 1.5))
    sampler = SphereSampler(cloud, 8, grid)
    samples = sampler.sample(rays, beta=0.01, train=False, generator=None)
    z, valid = samples.z, samples.valid
    assert sampler.last_miss_fraction == 0.5
    assert ((z[1] >= 0.9 - 1e-5) & (z[1] <= 1.1 + 1e-5)).all()  # covered: all samples in its sphere
    assert valid[0].all() and (z[0] - 1.0).abs().min() < 0.1  # fallback: samples reach the plane at t = 1
