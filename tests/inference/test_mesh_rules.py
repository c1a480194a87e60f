"""The mesh cleaning rules (inference/mesh_rules.py), each on surfaces and values with a known answer;
tests/inference/test_outputs.py runs them inside extraction on an analytic field with injected observers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from clusteringsdf.inference.mesh_rules import (
    COPY_TOLERANCE, DUPLICATE_SLACK, MIN_OBJECT_SURFACE, Surface, clean_components, cut_faces, drop_unobserved_components,
    inside_another_object, is_fragment, unseen_copy,
)


def surface_of(mesh: trimesh.Trimesh) -> Surface:
    return Surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.vertex_normals))


def two_spheres(radius: float, offset: float):
    """A unit sphere and one of ``radius`` ``offset`` along x: (first, second, both, Surface of both)."""
    first = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    second = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    second.apply_translation([offset, 0.0, 0.0])
    both = trimesh.util.concatenate([first, second])
    return first, second, both, surface_of(both)


def test_a_vertex_is_inside_another_object_where_its_sdf_is_not_positive_or_deep_in_a_duplicate():
    step = 0.01
    others = np.array([0.5, 0.0, -0.1, 0.5, 0.5, 0.5])
    duplicates = np.array([np.inf, np.inf, np.inf, -0.5 * step, -DUPLICATE_SLACK * step, -2 * step])
    assert inside_another_object(others, duplicates, step).tolist() == [False, True, True, False, True, True]


def test_an_unseen_vertex_hugging_another_surface_is_a_copy():
    step = 0.01
    others = np.array([0.5 * step, 0.5 * step, 2 * step, np.inf])
    duplicates = np.array([np.inf, np.inf, np.inf, (COPY_TOLERANCE - 0.1) * step])
    observed = np.array([0, 3, 0, 0])
    assert unseen_copy(others, duplicates, observed, step).tolist() == [True, False, False, True]


def test_cutting_drops_the_faces_that_touch_dropped_vertices_unless_it_would_drop_all():
    sphere = surface_of(trimesh.creation.icosphere(subdivisions=1))
    drop = sphere.vertices[:, 2] > 0.5
    cut, kept = cut_faces(sphere, drop)
    assert len(cut.faces) == int((~drop[sphere.faces].any(axis=1)).sum()) and (cut.vertices[:, 2] <= 0.5).all()
    assert np.array_equal(cut.vertices, sphere.vertices[kept])
    whole, kept = cut_faces(sphere, np.ones(len(sphere.vertices), dtype=bool))  # a surface wholly inside others stays
    assert whole is sphere and np.array_equal(kept, np.arange(len(sphere.vertices)))


def test_cleaning_keeps_the_largest_component():
    big, small, both, surface = two_spheres(0.1, 5.0)
    for threshold in (0.0, 0.5, 0.999, 1.0):
        cleaned, _ = clean_components(surface, threshold)
        assert trimesh.Trimesh(cleaned.vertices, cleaned.faces).area >= big.area - 1e-6, threshold  # the largest is never removed
    cleaned, floaters = clean_components(surface, 0.05)
    assert len(cleaned.faces) == len(big.faces) and floaters == 0.0
    kept, floaters = clean_components(surface, 0.0)
    assert len(kept.faces) == len(both.faces) and floaters == pytest.approx(small.area / both.area)


def test_components_the_cameras_barely_observed_are_dropped():
    seen_sphere, shell, both, surface = two_spheres(1.0, 5.0)
    n = len(seen_sphere.vertices)
    observed = np.zeros(len(both.vertices), dtype=bool)
    observed[: n // 2] = True  # half of the first sphere seen
    observed[n + 1] = True  # one vertex of the shell on a measured depth: a few faces, under 10%
    kept = drop_unobserved_components(surface, observed)
    assert len(kept.faces) == len(seen_sphere.faces) and np.allclose(kept.vertices, seen_sphere.vertices)
    nothing_seen = drop_unobserved_components(surface, np.zeros(len(both.vertices), dtype=bool))
    assert len(nothing_seen.faces) == len(both.faces)  # no observation to judge by: unchanged
    observed[n:] = shell.vertices[:, 2] > 0.6  # a cap of the shell: over 10% of it, under half the sphere's seen area
    assert len(drop_unobserved_components(surface, observed).faces) == len(seen_sphere.faces)
    observed[n:] = True  # all of it: more seen area than the half-seen sphere, both kept
    assert len(drop_unobserved_components(surface, observed).faces) == len(both.faces)


def test_components_the_labels_rarely_give_the_objects_class_are_dropped():
    """A bag (observed 3 times at each vertex, labelled bag in 2 of them) and a smaller wall patch its
    channel claimed (observed in ten views, labelled bag in one)."""
    bag, patch, both, surface = two_spheres(0.8, 3.0)
    n = len(bag.vertices)
    observed = np.full(len(both.vertices), 3)
    observed[n:] = 10
    agreeing = np.full(len(both.vertices), 2)
    agreeing[n:] = 1
    kept = drop_unobserved_components(surface, observed, agreeing)
    assert len(kept.faces) == len(bag.faces) and np.allclose(kept.vertices, bag.vertices)
    agreeing[n:] = 5  # labelled bag in half its views: as well supported as the bag, kept
    assert len(drop_unobserved_components(surface, observed, agreeing).faces) == len(both.faces)
    agreeing[:n] = 0  # labels that never say bag on the larger one: the patch they confirm is kept
    agreeing[n:] = 3
    kept = drop_unobserved_components(surface, observed, agreeing)
    assert len(kept.faces) == len(patch.faces) and np.allclose(kept.vertices, patch.vertices)
    assert len(drop_unobserved_components(surface, observed, np.zeros_like(agreeing)).faces) == len(both.faces)  # no label says


def test_an_object_tiny_next_to_the_scene_is_a_fragment():
    sphere = surface_of(trimesh.creation.icosphere(subdivisions=2, radius=0.1))
    area = trimesh.Trimesh(sphere.vertices, sphere.faces).area
    assert is_fragment(sphere, area / (0.5 * MIN_OBJECT_SURFACE))
    assert not is_fragment(sphere, area / (2 * MIN_OBJECT_SURFACE))
