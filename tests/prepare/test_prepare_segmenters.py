"""The Mask2Former and SAM adapters end to end with tiny randomly initialised models saved with
`save_pretrained` (no real weights), and the classical segmenter's contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.data.scene import load_scene, read_segmentation_classes
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare import PrepareOptions, prepare_scene
from clusteringsdf.prepare.segmenters import ClassicalSegmenter
from clusteringsdf.prepare.segmenters.mask2former import split_things

LABELS = {0: "person", 1: "chair", 2: "wall-other-merged", 3: "floor-wood"}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=5, width=64, height=48, textured=False)


@pytest.fixture(scope="module")
def mask2former_weights(tmp_path_factory) -> Path:
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    torch.manual_seed(0)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32, encoder_layers=1,
        decoder_layers=2, num_attention_heads=1, dim_feedforward=64, num_queries=8, id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    model = Mask2FormerForUniversalSegmentation(config)
    with torch.no_grad():  # confident random predictions: every query says "chair"
        model.class_predictor.bias.zero_()
        model.class_predictor.bias[1] = 20.0
    folder = tmp_path_factory.mktemp("weights") / "m2f"
    model.save_pretrained(folder)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sam_weights(tmp_path_factory) -> Path:
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
                              SamVisionConfig)

    torch.manual_seed(0)
    vision = SamVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=1, image_size=64, patch_size=8, output_channels=16,
                             mlp_dim=32, window_size=4, global_attn_indexes=[0], num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=1, iou_head_hidden_dim=16)
    folder = tmp_path_factory.mktemp("weights") / "sam"
    SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)).save_pretrained(folder)
    SamProcessor(SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}, mask_size={"longest_edge": 16},
                                   mask_pad_size={"height": 16, "width": 16})).save_pretrained(folder)
    return folder


def _prepare(capture, out: Path, **kwargs):
    options = PrepareOptions(out=out, images=capture.root / "color", poses="scannet", poses_path=capture.root, **kwargs)
    return prepare_scene(options, log=lambda m: None)


def test_split_things_by_name_and_by_file(tmp_path):
    things, stuff = split_things(LABELS, tmp_path)
    assert things == {0, 1} and stuff == {2, 3}
    (tmp_path / "thing_classes.json").write_text(json.dumps(["person", 3]))
    assert split_things(LABELS, tmp_path) == ({0, 3}, {1, 2})


def test_mask2former_end_to_end(capture, mask2former_weights, tmp_path, monkeypatch):
    from clusteringsdf.prepare.segmenters import mask2former

    # random mask logits overlap too much for the default overlap test: accept every segment
    original = mask2former.Mask2FormerSegmenter.__init__
    monkeypatch.setattr(mask2former.Mask2FormerSegmenter, "__init__", lambda self, weights, device="cpu": original(
        self, weights, device, overlap_threshold=0.0))
    out = tmp_path / "scene"
    result = _prepare(capture, out, segmenter="mask2former", segmenter_weights=mask2former_weights)
    assert not result.class_agnostic
    classes = read_segmentation_classes(out / layout.SEGMENTATION_FILE)
    assert classes.thing_classes == (1, 2) and set(classes.stuff_classes) == {0, 3, 4}  # label id + 1; void is stuff
    assert classes.names[2] == "chair" and not classes.class_agnostic
    scene = load_scene(out)
    assert scene.m2f_semantics.shape == (5, 48, 64)
    assert set(np.unique(scene.m2f_semantics)) <= {0, 1, 2, 3, 4}
    chair = scene.m2f_semantics == 2
    assert chair.any()  # the biased model predicts chairs, each a thing instance
    assert np.all(scene.m2f_instance[chair] > 0) and np.all(scene.m2f_instance[~chair & (scene.m2f_semantics != 1)] == 0)
    assert np.all(scene.confidence[chair] > 0.9)


def test_sam_end_to_end(capture, sam_weights, tmp_path, monkeypatch):
    from clusteringsdf.prepare.segmenters import sam

    # random weights predict low IoUs: accept every mask so that instances are written
    original = sam.SamSegmenter.__init__
    monkeypatch.setattr(sam.SamSegmenter, "__init__", lambda self, weights, device="cpu": original(
        self, weights, device, points_per_side=4, iou_threshold=-1.0, stability_threshold=0.0))
    out = tmp_path / "scene"
    result = _prepare(capture, out, segmenter="sam", segmenter_weights=sam_weights)
    assert result.class_agnostic
    scene = load_scene(out)
    assert scene.classes.class_agnostic and scene.classes.thing_classes == (2,)
    assert np.array_equal(scene.m2f_semantics, np.where(scene.m2f_instance > 0, 2, 1))
    assert (scene.m2f_instance > 0).any()


def test_segmenter_weight_errors(capture, mask2former_weights, sam_weights, tmp_path, capsys):
    base = ["prepare", "--images", str(capture.root / "color"), "--poses", "scannet", "--poses-path", str(capture.root), "--quiet"]
    cases = [
        (["--segmenter", "sam", "--segmenter-weights", str(mask2former_weights)], "holds a 'mask2former' checkpoint"),
        (["--segmenter", "mask2former"], "needs --segmenter-weights DIR"),
        (["--segmenter", "mask2former", "--segmenter-weights", str(tmp_path / "nowhere")], "not a checkpoint folder"),
    ]
    for index, (extra, message) in enumerate(cases):
        out = tmp_path / f"scene{index}"
        assert main(base + ["--out", str(out)] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()


def test_classical_keeps_room_shell_as_background(capture):
    frame = capture.names[0]
    rgb = layout.read_color(capture.root / "color" / f"{frame}.png")
    depth = layout.read_depth(capture.root / "depth" / f"{frame}.png")
    masks = ClassicalSegmenter().segment(rgb, depth, capture.k)
    assert masks.semantics is None and masks.instance.dtype == np.int32
    gt = layout.read_label(capture.root / "rs_semantics" / f"{frame}.png")
    shell = np.isin(gt, [1, 2, 13])  # wall, floor, ceiling
    assert (masks.instance[shell] > 0).mean() < 0.2
