"""The same code on every device: each method trains, resumes exactly, renders and meshes on the CPU
and, when PyTorch sees a GPU, on CUDA (those variants are skipped without one, never counted as passed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clusteringsdf.config import preset
from clusteringsdf.inference.evaluate_run import label_cameras
from clusteringsdf.inference.mesh import extract_meshes
from clusteringsdf.methods import METHODS
from clusteringsdf.training.trainer import Trainer


def config(mode: str, iterations: int, **values):
    labels = "gt" if mode == "objectsdf" else "m2f"
    return preset("tiny").with_values(
        {"mode": mode, "data.labels": labels, "train.iterations": iterations, "train.checkpoint_every": 4, "batch.rays": 64, **values}
    )


@pytest.mark.parametrize("mode", list(METHODS))
def test_every_method_trains_renders_and_meshes(tiny_scene_source, tmp_path, device, mode):
    trainer = Trainer(config(mode, 4), tiny_scene_source, tmp_path / "run", device, progress=False)
    trainer.train()
    assert trainer.iteration == 4
    for tensor in list(trainer.model.state_dict().values()) + list(trainer.method.state_dict().values()):
        assert tensor.device.type == device.type
        assert not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())
    trained = trainer.trained_run()
    trained.model.eval()
    scene = trained.scene
    frames = scene.split("test")[:1]
    views, semantics, instances = label_cameras(trained, scene.poses[frames], scene.intrinsics[frames], progress=False)
    assert views[0].rgb.shape == (*scene.hw, 3) and np.isfinite(views[0].rgb).all()
    assert semantics[0].shape == instances[0].shape == scene.hw
    index = extract_meshes(trained, tmp_path / "meshes", resolution=24)
    assert "scene" in index


@pytest.mark.parametrize("sampler", ["grid", "error_bounded", "spheres"])
def test_resume_is_exact_on_every_device(tiny_scene_source, tmp_path, device, sampler):
    settings = {"sampler.kind": sampler, "sampler.eb_samples_eval": 32, "sampler.eb_max_iters": 2}
    straight = Trainer(config("panoptic", 8, **settings), tiny_scene_source, tmp_path / "a", device, progress=False)
    straight.train()
    interrupted = Trainer(config("panoptic", 8, **settings), tiny_scene_source, tmp_path / "b", device, progress=False)
    interrupted.train(iterations=6)  # the last checkpoint is at step 4
    resumed = Trainer(config("panoptic", 8, **settings), tiny_scene_source, tmp_path / "b", device, resume=True, progress=False)
    assert resumed.iteration == 4
    resumed.train()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[name]), name
