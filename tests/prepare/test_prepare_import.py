"""Imported poses (COLMAP model, transforms.json, ScanNet folder) and imported masks (COCO /
detectron2 panoptic, instance PNGs, binary masks, Panoptic Lifting folders), each on a small fixture
written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from clusteringsdf.data import layout
from clusteringsdf.data.scene import load_scene, read_segmentation_classes
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare import PrepareOptions, prepare_scene


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=5, width=64, height=48, textured=False)


def _run(capture, out: Path, **kwargs):
    kwargs.setdefault("images", capture.root / "color")
    return prepare_scene(PrepareOptions(out=out, **kwargs), log=lambda m: None)


def _poses(scene: Path, names: list[str]) -> np.ndarray:
    return np.stack([layout.read_pose(scene / "pose" / f"{n}.txt") for n in names])


# ------------------------------------------------------------------------------------------ poses


def test_import_colmap_text_model(capture, tmp_path):
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    k = capture.k
    (model / "cameras.txt").write_text(f"1 PINHOLE {capture.width} {capture.height} {k[0, 0]} {k[1, 1]} {k[0, 2] + 0.5} {k[1, 2] + 0.5}\n")
    lines = []
    for index, (name, pose) in enumerate(zip(capture.names[:-1], capture.poses[:-1]), start=1):  # the last frame is not in the model
        world_to_cam = np.linalg.inv(pose)
        x, y, z, w = Rotation.from_matrix(world_to_cam[:3, :3]).as_quat()
        tx, ty, tz = world_to_cam[:3, 3]
        lines += [f"{index} {w} {x} {y} {z} {tx} {ty} {tz} 1 images/{name}.jpg", ""]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("")
    out = tmp_path / "scene"
    result = _run(capture, out, poses="colmap", poses_path=tmp_path / "sparse")
    assert result.pose_source == "colmap" and list(result.unregistered) == [capture.names[-1]]
    assert np.allclose(_poses(out, capture.names[:-1]), capture.poses[:-1], atol=1e-6)
    assert np.allclose(layout.read_intrinsics(out / layout.INTRINSICS_FILE), k, atol=1e-6)


def test_import_transforms_json(capture, tmp_path):
    k = capture.k
    frames = [{"file_path": f"images/{n}.png", "transform_matrix": (p @ np.diag([1.0, -1.0, -1.0, 1.0])).tolist()}
              for n, p in zip(capture.names, capture.poses)]
    document = {"fl_x": k[0, 0], "fl_y": k[1, 1], "cx": k[0, 2] + 0.5, "cy": k[1, 2] + 0.5, "w": capture.width, "h": capture.height,
                "camera_model": "OPENCV", "frames": frames, "aabb_scale": 4}
    (tmp_path / "transforms.json").write_text(json.dumps(document))
    out = tmp_path / "scene"
    result = _run(capture, out, poses="transforms", poses_path=tmp_path / "transforms.json")
    assert result.pose_source == "transforms" and not result.unregistered
    assert np.allclose(_poses(out, capture.names), capture.poses, atol=1e-6)
    assert np.allclose(layout.read_intrinsics(out / layout.INTRINSICS_FILE), k, atol=1e-6)


def test_import_scannet_skips_lost_tracking(capture, tmp_path):
    folder = tmp_path / "scannet"
    shutil.copytree(capture.root / "pose", folder / "pose")
    shutil.copytree(capture.root / "intrinsic", folder / "intrinsic")
    (folder / "pose" / f"{capture.names[2]}.txt").write_text("\n".join(["-inf -inf -inf -inf"] * 4) + "\n")
    out = tmp_path / "scene"
    result = _run(capture, out, poses="scannet", poses_path=folder, depth=capture.root / "depth")
    assert result.unregistered == {capture.names[2]: "invalid pose (tracking lost)"}
    kept = [n for n in capture.names if n != capture.names[2]]
    assert np.allclose(_poses(out, kept), capture.poses[[capture.names.index(n) for n in kept]], atol=1e-8)
    assert np.allclose(layout.read_depth(out / "depth" / f"{kept[0]}.png"), layout.read_depth(capture.root / "depth" / f"{kept[0]}.png"))


# ------------------------------------------------------------------------------------------ masks


def _masks_run(capture, tmp_path: Path, folder: Path, fmt: str):
    out = tmp_path / "scene"
    result = _run(capture, out, poses="scannet", poses_path=capture.root, segmenter="import", masks=folder, masks_format=fmt)
    return result, load_scene(out)


def _gt(capture, name: str) -> tuple[np.ndarray, np.ndarray]:
    return (layout.read_label(capture.root / "rs_semantics" / f"{name}.png"), layout.read_label(capture.root / "rs_instance" / f"{name}.png"))


def test_import_instance_pngs(capture, tmp_path):
    folder = tmp_path / "masks"
    for name in capture.names:
        layout.write_label(folder / f"{name}.png", _gt(capture, name)[1])
    result, scene = _masks_run(capture, tmp_path, folder, "instance-png")
    assert result.class_agnostic and scene.classes.class_agnostic
    for f, name in enumerate(capture.names):
        instance = _gt(capture, name)[1]
        assert np.array_equal(scene.m2f_instance[f] > 0, instance > 0)
        assert np.array_equal(scene.m2f_semantics[f], np.where(instance > 0, 2, 1))


def test_import_binary_masks(capture, tmp_path):
    folder = tmp_path / "masks"
    for name in capture.names:
        instance = _gt(capture, name)[1]
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.full(instance.shape, 255, np.uint8)).save(folder / name / "0.png")  # a mask covering the frame: painted first
        for index, value in enumerate(np.unique(instance[instance > 0]), start=1):
            Image.fromarray(((instance == value) * 255).astype(np.uint8)).save(folder / name / f"{index}.png")
    _, scene = _masks_run(capture, tmp_path, folder, "binary-masks")
    for f, name in enumerate(capture.names):
        instance = _gt(capture, name)[1]
        ours = scene.m2f_instance[f]
        assert len(np.unique(ours)) == len(np.unique(instance[instance > 0])) + 1  # the objects + the covering mask
        for value in np.unique(instance[instance > 0]):
            assert len(np.unique(ours[instance == value])) == 1  # each object is one instance on top


def _panoptic_png(semantic: np.ndarray, instance: np.ndarray, things: set[int]) -> tuple[np.ndarray, list[dict]]:
    ids = np.zeros(semantic.shape, dtype=np.int64)
    segments = []
    keys = sorted({(int(c), int(i) if c in things else 0) for c, i in zip(semantic.ravel(), instance.ravel()) if c > 0})
    for segment_id, (category, inst) in enumerate(keys, start=1):
        mask = (semantic == category) & ((instance == inst) if category in things else True)
        ids[mask] = segment_id * 1000 + 7  # ids need not be small
        segments.append({"id": segment_id * 1000 + 7, "category_id": category * 10, "isthing": category in things})
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    return rgb, segments


@pytest.mark.parametrize("style", ["coco", "detectron2"])
def test_import_coco_panoptic(capture, tmp_path, style):
    things = set(read_segmentation_classes(capture.root / layout.SEGMENTATION_FILE).thing_classes)
    folder = tmp_path / "masks"
    folder.mkdir()
    annotations, categories = [], {}
    for name in capture.names:
        semantic, instance = _gt(capture, name)
        rgb, segments = _panoptic_png(semantic, instance, things)
        Image.fromarray(rgb).save(folder / f"{name}.png")
        for segment in segments:
            categories[segment["category_id"]] = segment["isthing"]
        if style == "detectron2":
            (folder / f"{name}.json").write_text(json.dumps(segments))
        annotations.append({"file_name": f"{name}.png", "image_id": name, "segments_info": segments})
    if style == "coco":
        cats = [{"id": c, "name": f"cat{c}", "isthing": int(t)} for c, t in sorted(categories.items())]
        (folder / "panoptic.json").write_text(json.dumps({"annotations": annotations, "categories": cats}))
    result, scene = _masks_run(capture, tmp_path, folder, "coco-panoptic")
    assert not result.class_agnostic
    order = sorted(categories)
    expected_things = tuple(sorted(order.index(c) + 1 for c, t in categories.items() if t))
    assert scene.classes.thing_classes == expected_things
    for f, name in enumerate(capture.names):
        semantic, instance = _gt(capture, name)
        mapped = np.array([0] + [order.index(c * 10) + 1 if c * 10 in order else 0 for c in range(1, semantic.max() + 1)])[semantic]
        assert np.array_equal(scene.m2f_semantics[f], mapped)
        thing_pixels = np.isin(semantic, list(things)) & (instance > 0)
        assert np.all(scene.m2f_instance[f][thing_pixels] > 0) and np.all(scene.m2f_instance[f][~thing_pixels] == 0)
    if style == "coco":
        assert scene.classes.names[1] == f"cat{order[0]}"


def test_import_panoptic_lifting_folders(tiny_scene_source, tmp_path):
    out = tmp_path / "scene"
    prepare_scene(PrepareOptions(out=out, images=tiny_scene_source / "color", poses="scannet", poses_path=tiny_scene_source,
                                 segmenter="import", masks=tiny_scene_source, masks_format="panoptic-lifting"), log=lambda m: None)
    source, ours = load_scene(tiny_scene_source), load_scene(out)
    assert np.array_equal(ours.m2f_semantics, source.m2f_semantics)
    assert np.array_equal(ours.m2f_instance > 0, source.m2f_instance > 0)
    assert np.allclose(ours.confidence, source.confidence, atol=2e-3)
    assert ours.classes.thing_classes == source.classes.thing_classes and ours.classes.num_classes == source.classes.num_classes
