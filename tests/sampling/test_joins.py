"""Joining one frame's masks along depth-continuous borders (sampling/joins.py)."""

import numpy as np

from clusteringsdf.sampling.joins import border_pairs, join_frame, join_masks


def two_objects_in_fragments() -> tuple[np.ndarray, np.ndarray]:
    """A 20x30 frame: a slanted plane at 2-2.3 m cut into fragments 5 and 9 (left, middle), a box at 1 m
    in front of it (fragment 7, right), background 0 on the top rows."""
    depth = np.tile(np.linspace(2.0, 2.3, 30), (20, 1))
    instance = np.zeros((20, 30), dtype=np.int32)
    instance[4:, :10] = 5
    instance[4:, 10:20] = 9
    instance[4:, 20:] = 7
    depth[4:, 20:] = 1.0
    return instance, depth


def test_fragments_of_one_surface_join_and_an_occluding_object_stays_apart():
    instance, depth = two_objects_in_fragments()
    joined, merged = join_frame(instance, depth)
    assert merged == 1
    assert set(np.unique(joined[4:, :20])) == {5}  # the smallest id of the joined parts
    assert set(np.unique(joined[4:, 20:])) == {7}
    assert (joined[:4] == 0).all()


def test_border_lengths_count_continuous_pixel_pairs():
    instance, depth = two_objects_in_fragments()
    pairs, length, smooth = border_pairs(instance, depth)
    found = {tuple(p): (int(n), int(s)) for p, n, s in zip(pairs, length, smooth)}
    assert found == {(5, 9): (16, 16), (7, 9): (16, 0)}


def test_joins_are_transitive_and_need_a_mostly_continuous_border():
    instance, depth = two_objects_in_fragments()
    depth[4:12, 20:] = depth[4:12, 19:20]  # the box's upper half continues the plane: 8 of 16 border pairs smooth
    joined, _ = join_frame(instance, depth)
    assert len(np.unique(joined[4:, 20:])) == 1 and joined[5, 25] == 7
    depth[4:18, 20:] = depth[4:18, 19:20]  # now 14 of 16 (over 80%): the box joins the plane's fragments
    joined, merged = join_frame(instance, depth)
    assert merged == 2 and set(np.unique(joined[4:])) == {5}


def test_missing_depth_is_no_evidence_and_no_depth_joins_nothing():
    instance, depth = two_objects_in_fragments()
    depth[:, 9:11] = 0.0
    assert join_frame(instance, depth)[1] == 0
    frames = np.stack([instance, instance])
    joined, merged = join_masks(frames, None)
    assert merged == 0 and joined is frames


def test_channels_auto_counts_places_not_the_parts_masks_cut_objects_into(tiny_scene_source):
    from clusteringsdf.data.scene import load_scene
    from clusteringsdf.sampling.frames import SegmentStatistics, auto_channel_count
    from clusteringsdf.sampling.places import count_places

    scene = load_scene(tiny_scene_source)
    whole = scene.gt_instance
    halves = whole.astype(np.int64) * 2  # every object cut into a left and a right part in every other frame
    columns = np.arange(whole.shape[2])
    for f in range(0, whole.shape[0], 2):
        for i in np.unique(whole[f][whole[f] > 0]):
            inside = whole[f] == i
            middle = np.median(np.nonzero(inside)[1])
            halves[f][inside & (columns[None, :] > middle)] += 1
    objects = count_places(scene, whole, scene.gt_semantics, gap=0.01)
    assert objects >= 2
    assert count_places(scene, halves, scene.gt_semantics, gap=0.01) == objects
    # places, not the parts of 2000 fragment ids, set the count; every frame's segments still fit
    assert auto_channel_count(SegmentStatistics(12, 2000), view_consistent=False, places=9) == 16
    assert auto_channel_count(SegmentStatistics(12, 2000), view_consistent=False) == 32
    assert auto_channel_count(SegmentStatistics(12, 2000), view_consistent=False, places=30) == 32


def test_train_with_channels_auto_sizes_the_run_from_the_scene(tiny_scene, tmp_path, capsys):
    from clusteringsdf.cli import main
    from clusteringsdf.runs import load_run_config

    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--iters", "2", "--channels", "auto", "--quiet"]) == 0
    said = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("channels auto:"))
    channels = load_run_config(run).field.channels
    assert said.startswith(f"channels auto: {channels} (") and "places in 3D" in said
