"""Pixel batches (label index, key frames, label-comprehensive pixels), per-frame channel targets,
the frame store's rays and targets, and the training batch builder."""

import numpy as np
import pytest
import torch

from types import SimpleNamespace

from clusteringsdf.config import BatchConfig
from clusteringsdf.data.scene import load_scene
from clusteringsdf.errors import DataError
from clusteringsdf.sampling import pixels
from clusteringsdf.sampling.batches import BatchBuilder
from clusteringsdf.sampling.frames import FrameStore, per_frame_channels, scene_channels, training_labels
from clusteringsdf.sampling.places import segment_places


def label_maps() -> torch.Tensor:
    """Three 4x5 frames: frame 0 has labels 0, 1, 2 and ignored pixels; frame 1 only background;
    frame 2 labels 0 and 7."""
    labels = torch.zeros(3, 4, 5, dtype=torch.int64)
    labels[0, :2, :2] = 1
    labels[0, 2:, 3:] = 2
    labels[0, 3, 0] = -1
    labels[2, :, 4] = 7
    return labels


def test_label_index_groups_every_pixel_by_label():
    labels = label_maps()
    index = pixels.index_labels(labels)
    assert index.num_labels.tolist() == [3, 1, 2]
    assert index.foreground_labels.tolist() == [2, 0, 1]
    flat = labels.reshape(3, -1)
    for f in range(3):
        for slot in range(int(index.num_labels[f])):
            value = int(index.label_values[f, slot])
            start, count = int(index.starts[f, slot]), int(index.counts[f, slot])
            members = index.order[f, start : start + count]
            assert (flat[f, members] == value).all()
            assert count == int((flat[f] == value).sum())
    assert (index.counts[1, 1:] == 0).all() and (index.label_values[1, 1:] == -2).all()  # padding


def test_label_comprehensive_pixels_cover_every_label_in_proportion():
    labels = label_maps()
    index = pixels.index_labels(labels)
    generator = torch.Generator().manual_seed(0)
    frames = torch.tensor([0, 2, 0])
    frame, pixel = pixels.label_comprehensive_pixels(index, frames, 10, generator=generator)
    flat = labels.reshape(3, -1)
    drawn = flat[frame, pixel]
    assert (drawn >= 0).all()  # ignored pixels are never drawn
    assert set(drawn[frame == 0].tolist()) == {0, 1, 2}
    assert set(drawn[frame == 2].tolist()) == {0, 7}
    # quota per label: ceil(budget * area / pixels) for each batch slot; frame 0 appears twice
    assert int((drawn[frame == 0] == 1).sum()) == 2 * 2  # ceil(10 * 4 / 20) = 2
    assert int((drawn[frame == 0] == 0).sum()) == 2 * 6  # ceil(10 * 11 / 20) = 6
    assert int((drawn[frame == 2] == 7).sum()) == 2  # ceil(10 * 4 / 20)


@pytest.mark.parametrize("balance, frame0, frame2", [(0.5, {0: 6, 1: 4, 2: 4}, {0: 8, 7: 5}), (1.0, {0: 5, 1: 5, 2: 5}, {0: 7, 7: 7})])
def test_label_balance_gives_every_label_an_equal_share_on_top(balance, frame0, frame2):
    # budget 12: ceil((1 - balance) * 12 * area / 20) (>= 1) + floor(balance * 12 / labels in the frame)
    labels = label_maps()
    frame, pixel = pixels.label_comprehensive_pixels(pixels.index_labels(labels), torch.tensor([0, 2]), 12, generator=torch.Generator().manual_seed(0), balance=balance)
    drawn = labels.reshape(3, -1)[frame, pixel]
    for f, expected in ((0, frame0), (2, frame2)):
        values, counts = torch.unique(drawn[frame == f], return_counts=True)
        assert dict(zip(values.tolist(), counts.tolist())) == expected


def test_keyframes_come_from_the_train_split_and_empty_frames_are_replaced():
    labels = label_maps()
    index = pixels.index_labels(labels)
    train = torch.tensor([1, 2])
    key = pixels.keyframes(index, train, fraction=0.5)
    assert key.tolist() == [2]  # frame 0 has the most labels but is not a train frame
    generator = torch.Generator().manual_seed(0)
    chosen = pixels.choose_frames(index, train, key, 200, substitute_probability=0.0, generator=generator)
    assert set(chosen.tolist()) == {2}  # frame 1 has no foreground label: always replaced by a key frame
    everything = pixels.choose_frames(index, torch.tensor([0, 2]), key, 200, substitute_probability=1.0, generator=generator)
    assert set(everything.tolist()) == {2}


def test_random_pixels_stay_in_their_frame():
    frame, pixel = pixels.random_pixels(torch.tensor([4, 9]), 50, 12, torch.Generator().manual_seed(1))
    assert frame.tolist() == [4] * 50 + [9] * 50
    assert pixel.min() >= 0 and pixel.max() < 12


def test_per_frame_channels_are_distinct_random_and_overflow_is_ignored():
    instance = np.zeros((2, 3, 4), dtype=np.int64)
    instance[0, 0, :] = 5  # 4 px
    instance[0, 1, :3] = 9  # 3 px
    instance[0, 2, 0] = 11  # 1 px (smallest)
    instance[1, :, :2] = 5
    out = per_frame_channels(instance, channels=3, rng=np.random.default_rng(0))  # object channels 1 and 2
    assert (out[instance == 0] == 0).all()
    first = {int(out[0][instance[0] == i][0]) for i in (5, 9)}
    assert first == {1, 2}  # the two largest segments get the two channels
    assert (out[0][instance[0] == 11] == -1).all()  # more segments than channels: the smallest is ignored
    for i in (5, 9):
        assert len(np.unique(out[0][instance[0] == i])) == 1
    assert out[1][instance[1] == 5][0] in (1, 2)
    again = per_frame_channels(instance, channels=3, rng=np.random.default_rng(0))
    assert np.array_equal(out, again)


def test_scene_channels_are_one_table_for_all_frames():
    instance = np.array([[[0, 4], [9, 9]], [[4, 0], [0, 9]]])
    out = scene_channels(instance, channels=4, path="x")
    assert out.tolist() == [[[0, 1], [2, 2]], [[1, 0], [0, 2]]]
    with pytest.raises(DataError, match="2 instances but the field has only 1 object channels"):
        scene_channels(instance, channels=2, path="x")


def test_frame_store_rays_pass_through_their_pixels_with_their_targets(tiny_scene_source):
    scene = load_scene(tiny_scene_source)
    labels = training_labels(scene, "m2f")
    segment = per_frame_channels(labels.instance, 8, np.random.default_rng(0))
    store = FrameStore(scene, torch.device("cpu"), {"semantic": labels.semantic, "segment": segment, "confidence": labels.confidence})
    frame = torch.tensor([0, 3, 5])
    v, u = torch.tensor([1, 20, 47]), torch.tensor([2, 33, 63])
    rays = store.rays(frame, v, u, near=0.01)
    assert set(rays.targets) == {"semantic", "segment", "confidence"}
    assert torch.equal(rays.targets["semantic"], torch.as_tensor(labels.semantic[frame, v, u], dtype=torch.int64))
    assert torch.equal(rays.targets["segment"], torch.as_tensor(segment[frame, v, u], dtype=torch.int64))
    assert rays.targets["confidence"].dtype == torch.float32
    assert torch.allclose(rays.rgb, torch.as_tensor(scene.colors[frame, v, u]).float() / 255)
    # a point along each ray projects back onto its pixel centre
    points = rays.origins + 0.5 * rays.directions
    poses, k = store.poses[frame], store.intrinsics[frame]
    camera = torch.einsum("rji,rj->ri", poses[:, :3, :3], points - poses[:, :3, 3])
    projected_u = k[:, 0, 0] * camera[:, 0] / camera[:, 2] + k[:, 0, 2]
    projected_v = k[:, 1, 1] * camera[:, 1] / camera[:, 2] + k[:, 1, 2]
    assert torch.allclose(projected_u, u.float(), atol=1e-3) and torch.allclose(projected_v, v.float(), atol=1e-3)
    assert torch.allclose(rays.directions.norm(dim=-1), torch.ones(3))
    assert (rays.near < rays.far).all()


def test_missing_label_source_is_a_data_error(tiny_scene):
    import shutil

    shutil.rmtree(tiny_scene / "rs_semantics")
    shutil.rmtree(tiny_scene / "rs_instance")
    scene = load_scene(tiny_scene)
    with pytest.raises(DataError, match="rs_semantics"):
        training_labels(scene, "gt")


def test_batches_hold_the_requested_rays_and_cover_every_label(tiny_scene_source):
    scene = load_scene(tiny_scene_source)
    labels = training_labels(scene, "m2f")
    segment = per_frame_channels(labels.instance, 8, np.random.default_rng(0))
    store = FrameStore(scene, torch.device("cpu"), {"segment": segment})
    generator = torch.Generator().manual_seed(0)
    uniform = BatchBuilder(store, BatchConfig(rays=64, frames_per_batch=2), 0.01, generator)
    batch = uniform.next(0)
    assert len(batch) == 64 and len(torch.unique(batch.frame)) <= 2
    assert set(batch.frame.tolist()) <= set(store.train_frames.tolist())
    clustered = BatchBuilder(store, BatchConfig(rays=64, frames_per_batch=2), 0.01, generator, label_comprehensive=True)
    batch = clustered.next(0)
    for f in torch.unique(batch.frame).tolist():
        present = set(np.unique(segment[f][segment[f] >= 0]).tolist())
        assert present <= set(batch.targets["segment"][batch.frame == f].tolist())  # every label of the frame has rays


def test_places_link_the_views_of_one_object_and_part_two_objects_of_one_class():
    """Three frames from one camera (2 m to a wall-parallel plane). Chair A: frames 0 and 1, its two
    views overlap; chair B: frames 1 and 2, far right; a stray chair segment only in frame 2; a bed
    whose two end views (frames 0, 2) are apart but both overlap the whole view of frame 1; stuff."""
    h, w, frames = 48, 64, 3
    segment = torch.zeros(frames, h, w, dtype=torch.int16)
    semantic = torch.ones(frames, h, w, dtype=torch.int32)  # class 1: stuff
    regions = {  # (frame, segment): class, rows, columns
        (0, 1): (5, (4, 17), (2, 18)), (1, 1): (5, (4, 17), (8, 24)),  # chair A
        (1, 2): (5, (4, 17), (40, 56)), (2, 1): (5, (4, 17), (44, 60)),  # chair B
        (2, 2): (5, (38, 48), (2, 16)),  # stray chair segment
        (0, 3): (4, (22, 33), (0, 20)), (1, 3): (4, (22, 33), (8, 51)), (2, 3): (4, (22, 33), (40, 64)),  # bed
    }
    for (f, s), (cls, rows, cols) in regions.items():
        segment[f, rows[0] : rows[1], cols[0] : cols[1]] = s
        semantic[f, rows[0] : rows[1], cols[0] : cols[1]] = cls
    segment[0, 40:48, 30:50] = 4  # stuff: a segment label without an instance
    instance = torch.where((segment > 0) & (semantic != 1), segment.int(), 0)
    cameras = SimpleNamespace(  # what places read of a scene
        depths=np.full((frames, h, w), 2.0, dtype=np.float32),
        poses=np.broadcast_to(np.eye(4, dtype=np.float32), (frames, 4, 4)),
        intrinsics=np.broadcast_to(np.array([[32.0, 0.0, 31.5], [0.0, 32.0, 23.5], [0.0, 0.0, 1.0]], dtype=np.float32), (frames, 3, 3)),
        normalization=SimpleNamespace(scale=1.0), splits={"train": np.arange(frames)}, num_frames=frames,
    )
    places = segment_places(cameras, segment.numpy(), instance.numpy(), semantic.numpy(), gap=0.01)
    assert places.shape == (frames, 5)
    chair_a, chair_b, bed = int(places[0, 1]), int(places[1, 2]), int(places[0, 3])
    assert chair_a >= 0 and int(places[1, 1]) == chair_a
    assert chair_b >= 0 and int(places[2, 1]) == chair_b and chair_b != chair_a
    assert int(places[1, 3]) == bed and int(places[2, 3]) == bed and bed not in (chair_a, chair_b)
    assert int(places[2, 2]) == -1  # seen in one frame only
    assert int(places[0, 4]) == -1 and int(places[0, 0]) == -1  # stuff and unlabelled pixels have no place
