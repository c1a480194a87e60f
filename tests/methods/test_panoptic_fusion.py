"""Panoptic fusion of rendered channels and classes, on hand-made label maps."""

import numpy as np

from clusteringsdf.methods.fusion import fuse_panoptic

THINGS = (5, 6)  # 1, 2 = stuff


def _views():
    """One 4 x 10 view: channel 1 = a chair (class 5), channel 2 = a one-pixel sliver of the chair,
    channel 3 = a channel voted wall (stuff) under which the semantic head sees a chair."""
    semantic = np.full((4, 10), 1)
    semantic[:, :5] = 5
    semantic[0, 9] = 5
    channel = np.zeros((4, 10), dtype=np.int64)
    channel[:, :5] = 1
    channel[3, 4] = 2
    channel[0, 9] = 3
    second = np.zeros_like(channel)
    second[3, 4] = 1
    stuff = np.full((4, 10), 1)
    stuff[3, :] = 2
    return [semantic], [channel], [second], [stuff]


def test_thing_pixels_need_a_thing_channel_and_a_thing_class():
    semantic, channel, second, stuff = _views()
    voted = np.array([-1, 5, 5, 1])
    sem, inst = fuse_panoptic(semantic, channel, THINGS, stuff, voted_classes=voted)
    assert inst[0][0, 9] == 0 and sem[0][0, 9] == 1  # wall channel: stuff, whatever the head says
    assert inst[0][0, 0] == 1 and sem[0][0, 0] == 5
    assert inst[0][3, 4] == 2  # no minimum size: the sliver stays its own segment
    assert inst[0][0, 6] == 0 and sem[0][3, 6] == 2  # background gets its best stuff class


def test_fragments_go_to_their_second_channel_or_to_stuff():
    semantic, channel, second, stuff = _views()
    voted = np.array([-1, 5, 5, 1])
    # 40 pixels; the sliver has 1 (2.5%), the chair 19: a 5% minimum drops only the sliver.
    sem, inst = fuse_panoptic(semantic, channel, THINGS, stuff, voted_classes=voted, second_channels=second, min_segment_fraction=0.05)
    assert inst[0][3, 4] == 1 and sem[0][3, 4] == 5
    assert set(np.unique(inst[0]).tolist()) == {0, 1}
    sem, inst = fuse_panoptic(semantic, channel, THINGS, stuff, voted_classes=voted, min_segment_fraction=0.05)
    assert inst[0][3, 4] == 0 and sem[0][3, 4] == 2  # no second channel: stuff
    sem, inst = fuse_panoptic(semantic, channel, THINGS, stuff, voted_classes=voted, second_channels=second, min_segment_fraction=0.6)
    assert not inst[0].any()  # nothing is big enough


def test_channels_without_votes_take_their_majority_class():
    semantic, channel, second, stuff = _views()
    sem, inst = fuse_panoptic(semantic, channel, THINGS, stuff)
    assert inst[0][0, 0] == 1 and sem[0][0, 0] == 5
    assert inst[0][0, 9] == 3 and sem[0][0, 9] == 5  # its only pixel says chair
