"""Checkpoints by model id (the local Hugging Face cache; offline, an id not in it is a one-line
error) and monocular depth (``prepare --mono-depth``): the per-frame fit to SfM points, and the whole
command with a tiny randomly initialised depth model saved into a temporary folder. No network."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from clusteringsdf.cli import main
from clusteringsdf.data import layout
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare import PrepareOptions, prepare_scene
from clusteringsdf.prepare.mono_depth import MonoDepthModel, fit_depth, output_kind


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=4, width=64, height=48, textured=False)


@pytest.fixture(scope="module")
def depth_weights(tmp_path_factory) -> Path:
    """A tiny random Depth Anything (relative: disparity) with its image processor."""
    from transformers import AutoModelForDepthEstimation, DepthAnythingConfig, Dinov2Config, DPTImageProcessor

    torch.manual_seed(0)
    backbone = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            out_indices=[1, 2], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, patch_size=14, neck_hidden_sizes=[8, 16],
                                 fusion_hidden_size=8, head_hidden_size=8, reassemble_factors=[2, 1], depth_estimation_type="relative")
    folder = tmp_path_factory.mktemp("weights") / "depth"
    AutoModelForDepthEstimation.from_config(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(folder)
    return folder


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


# ------------------------------------------------------------------------------------ model ids


def test_model_id_not_in_the_cache_offline_is_one_line_error(capture, tmp_path, hub_cache, capsys):
    base = ["prepare", "--quiet", "--images", str(capture.root / "color"), "--poses", "scannet", "--poses-path", str(capture.root)]
    for extra in (["--segmenter", "sam", "--segmenter-weights", "nobody-real/made-up-model"], ["--mono-depth", "nobody-real/made-up-model",
                                                                                              "--poses", "sfm"]):
        out = tmp_path / "scene"
        assert main(base + ["--out", str(out)] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("error: nobody-real/made-up-model: ") and "not in the local cache" in err and str(hub_cache) in err
        assert "could not be downloaded (HF_HUB_OFFLINE" in err and "hf download nobody-real/made-up-model" in err
        assert "models--nobody-real--made-up-model" in err
        assert not out.exists() and not list(tmp_path.glob(".*.prepare-*"))


def test_model_id_found_in_the_local_cache(depth_weights, hub_cache):
    snapshot = hub_cache / "models--tiny-org--tiny-depth" / "snapshots" / ("0" * 40)
    shutil.copytree(depth_weights, snapshot)
    (hub_cache / "models--tiny-org--tiny-depth" / "refs").mkdir()
    (hub_cache / "models--tiny-org--tiny-depth" / "refs" / "main").write_text("0" * 40)
    model = MonoDepthModel("tiny-org/tiny-depth")
    assert model.kind == "disparity" and model.name == "tiny-org/tiny-depth"
    assert model.predict(np.zeros((48, 64, 3), dtype=np.uint8)).shape == (48, 64)


# --------------------------------------------------------------------------------- depth fitting


def test_fit_recovers_a_known_scale_and_shift_despite_outliers():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 6.0, 300)
    outliers = rng.random(300) < 0.3
    disparity = (1.0 / depth + 0.05) / 2.5  # the model's relative inverse depth: 1/z = 2.5 p - 0.05
    disparity[outliers] = rng.uniform(disparity.min(), disparity.max(), outliers.sum())
    fit = fit_depth(disparity * (1 + rng.normal(0, 0.005, 300)), depth, "disparity")
    assert fit is not None and fit.scale == pytest.approx(2.5, rel=0.02) and fit.shift == pytest.approx(-0.05, abs=0.01)
    assert fit.inliers >= 0.95 * (~outliers).sum()
    assert np.allclose(fit.apply(disparity[~outliers]), depth[~outliers], rtol=0.01)

    scaled = depth / 0.37  # a metric model in the wrong unit: z = 0.37 p
    scaled[outliers] *= rng.uniform(1.5, 3.0, outliers.sum())
    fit = fit_depth(scaled, depth, "depth")
    assert fit is not None and fit.scale == pytest.approx(0.37, rel=1e-6) and fit.shift == 0.0
    assert fit_depth(scaled[:5], depth[:5], "depth") is None  # too few points
    assert fit_depth(rng.uniform(1, 2, 100), rng.uniform(1, 9, 100), "disparity") is None  # nothing agrees


def test_output_kind_from_the_config():
    assert output_kind({"model_type": "depth_anything", "depth_estimation_type": "relative"}) == "disparity"
    assert output_kind({"model_type": "depth_anything", "depth_estimation_type": "metric"}) == "depth"
    assert output_kind({"model_type": "dpt"}) == "disparity" and output_kind({"model_type": "zoedepth"}) == "depth"
    assert output_kind({"model_type": "something_new"}) is None


# ------------------------------------------------------------------------------ prepare --mono-depth


def _colmap_model_with_points(capture, folder: Path, per_frame: int = 40) -> None:
    """A COLMAP text model of the capture's true poses with 3D points on its true depth (one
    observation each), as structure-from-motion would give."""
    folder.mkdir(parents=True)
    k = capture.k
    (folder / "cameras.txt").write_text(f"1 PINHOLE {capture.width} {capture.height} {k[0, 0]} {k[1, 1]} {k[0, 2] + 0.5} {k[1, 2] + 0.5}\n")
    rng = np.random.default_rng(0)
    images, points = [], []
    for image_id, (name, pose) in enumerate(zip(capture.names, capture.poses), start=1):
        depth = layout.read_depth(capture.root / "depth" / f"{name}.png")
        v, u = np.nonzero(depth > 0)
        pick = rng.choice(len(u), per_frame, replace=False)
        u, v, z = u[pick], v[pick], depth[v[pick], u[pick]]
        camera = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
        world = camera @ pose[:3, :3].T + pose[:3, 3]
        first = len(points) + 1
        points += [f"{first + i} {x} {y} {w} 128 128 128 0.5 {image_id} {i}" for i, (x, y, w) in enumerate(world)]
        world_to_cam = np.linalg.inv(pose)
        qx, qy, qz, qw = Rotation.from_matrix(world_to_cam[:3, :3]).as_quat()
        tx, ty, tz = world_to_cam[:3, 3]
        images += [f"{image_id} {qw} {qx} {qy} {qz} {tx} {ty} {tz} 1 {name}.png",
                   " ".join(f"{a + 0.5} {b + 0.5} {first + i}" for i, (a, b) in enumerate(zip(u, v)))]
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "points3D.txt").write_text("\n".join(points) + "\n")


def test_prepare_with_mono_depth(capture, depth_weights, tmp_path, monkeypatch):
    sparse = tmp_path / "sparse"
    _colmap_model_with_points(capture, sparse)
    options = dict(images=capture.root / "color", poses="colmap", poses_path=sparse, mono_depth=str(depth_weights))
    # the random model itself: prepare runs and writes a depth map for every frame
    out = tmp_path / "random"
    prepare_scene(PrepareOptions(out=out, **options), log=lambda m: None)
    assert sorted(p.stem for p in (out / "depth").glob("*.png")) == sorted(capture.names)
    report = json.loads((out / "prepare.json").read_text())
    assert report["depth_source"] == "mono" and report["depth"]["output"] == "disparity"

    # a model that knows the true disparity up to an unknown scale and shift (different per frame)
    truth = {}
    for index, name in enumerate(capture.names):
        rgb = layout.read_color(capture.root / "color" / f"{name}.png")
        true_depth = layout.read_depth(capture.root / "depth" / f"{name}.png")
        disparity = np.where(true_depth > 0, 1.0 / np.maximum(true_depth, 1e-3), 0.0)
        truth[hashlib.sha1(rgb.tobytes()).hexdigest()] = (0.3 + 0.1 * index) * disparity + 0.02 * index
    monkeypatch.setattr(MonoDepthModel, "predict", lambda self, rgb: truth[hashlib.sha1(rgb.tobytes()).hexdigest()].astype(np.float32))
    out = tmp_path / "oracle"
    prepare_scene(PrepareOptions(out=out, **options), log=lambda m: None)
    report = json.loads((out / "prepare.json").read_text())
    assert report["depth"]["frames_fitted"] == len(capture.names) and report["depth"]["frames_without_depth"] == []
    assert report["poses"]["metric"] is False  # SfM-like points without sensor depth: the scene's unit is arbitrary
    moved = [i for i in range(1, len(capture.names)) if np.linalg.norm(capture.poses[i, :3, 3] - capture.poses[0, :3, 3]) > 0.05][0]
    written_poses = [layout.read_pose(out / "pose" / f"{capture.names[i]}.txt") for i in (0, moved)]
    unit = np.linalg.norm(written_poses[1][:3, 3] - written_poses[0][:3, 3]) / np.linalg.norm(capture.poses[moved, :3, 3] - capture.poses[0, :3, 3])
    for name in capture.names:
        written = layout.read_depth(out / "depth" / f"{name}.png")
        true_depth = layout.read_depth(capture.root / "depth" / f"{name}.png")
        valid = (written > 0) & (true_depth > 0)
        assert valid.mean() > 0.9
        assert np.median(np.abs(written[valid] / (unit * true_depth[valid]) - 1)) < 0.01


def test_mono_depth_option_errors(capture, tmp_path, capsys):
    base = ["prepare", "--quiet", "--images", str(capture.root / "color"), "--out", str(tmp_path / "scene"), "--mono-depth", "some/model"]
    for extra, message in ((["--depth", str(capture.root / "depth")], "it takes no --depth"),
                           (["--poses", "scannet", "--poses-path", str(capture.root)], "needs --poses auto, sfm or colmap")):
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_batch_passes_a_model_id_through(capture):
    from clusteringsdf.batch import CaptureOptions

    options = CaptureOptions(segmenter="sam", segmenter_weights="facebook/sam-vit-base")
    options.check()  # not a folder, but a model id: prepare resolves it
    args = options.args_for(capture.root / "color", "cpu")
    assert args[args.index("--segmenter-weights") + 1] == "facebook/sam-vit-base"
