"""Training hooks: each owns its schedule and state, is checkpointed, and a run resumes exactly;
adding one is one module and one registry line (CONTRIBUTING.md, "Adding a training hook")."""

from __future__ import annotations

import torch
from conftest import documented_example

from clusteringsdf.config import preset
from clusteringsdf.training import hooks
from clusteringsdf.training.hooks import SphereOptimisation, VolumeRefresh
from clusteringsdf.training.trainer import Trainer

CPU = torch.device("cpu")


def sphere_config(iterations: int):
    """A sphere-guided panoptic run whose neighbour searches (every 5 steps, and after the resampling
    every 7) fall between its checkpoints (every 4)."""
    return preset("tiny").with_values({
        "mode": "panoptic", "train.iterations": iterations, "train.checkpoint_every": 4, "batch.rays": 64, "sampler.kind": "spheres",
        "spheres.warmup": 0.1, "spheres.neighbours_every": 5, "spheres.resample_every": 7,
    })


def states(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    out.update({f"method.{k}": v.clone() for k, v in trainer.method.state_dict().items()})
    return out


def test_a_sphere_run_resumes_bit_exact(tiny_scene, tmp_path):
    straight = Trainer(sphere_config(16), tiny_scene, tmp_path / "straight", CPU, progress=False)
    straight.train()
    interrupted = Trainer(sphere_config(16), tiny_scene, tmp_path / "resumed", CPU, progress=False)
    interrupted.train(iterations=10)  # killed after step 10: the last checkpoint is at step 8
    spheres = interrupted.hook(SphereOptimisation)
    assert spheres is not None and spheres.neighbours_at not in (None, 8)  # searched between checkpoints
    del interrupted
    resumed = Trainer(sphere_config(16), tiny_scene, tmp_path / "resumed", CPU, resume=True, progress=False)
    assert resumed.iteration == 8
    resumed.train()
    a, b = states(straight), states(resumed)
    assert a.keys() == b.keys() and "model.spheres.centres" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_hooks_attach_only_where_a_run_uses_them(tiny_scene, tmp_path):
    spheres = Trainer(sphere_config(4), tiny_scene, tmp_path / "spheres", CPU, progress=False)
    assert [type(h).__name__ for h in spheres.hooks] == ["VolumeRefresh", "SphereOptimisation", "ChannelVoting", "TrainingHealth"]
    contrastive = preset("tiny").with_values({"mode": "contrastive", "sampler.kind": "error_bounded", "train.iterations": 4})
    trainer = Trainer(contrastive, tiny_scene, tmp_path / "contrastive", CPU, progress=False)
    assert [type(h).__name__ for h in trainer.hooks] == ["SlowHeadAverage", "TrainingHealth"]  # no volume, no opacities, no spheres
    assert trainer.hook(VolumeRefresh) is None


def test_a_new_hook_is_one_class_and_one_registry_line(tiny_scene, tmp_path, monkeypatch):
    """CONTRIBUTING.md's example, as written there: it runs after a warm-up and its state is checkpointed."""
    StepCounter = documented_example("src/clusteringsdf/training/hooks/step_counter.py")["StepCounter"]
    monkeypatch.setattr(hooks, "HOOKS", [*hooks.HOOKS, StepCounter])
    config = preset("tiny").with_values({"mode": "panoptic", "train.iterations": 10, "train.checkpoint_every": 4})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    trainer.train(iterations=6)  # checkpoint at 4: the counter saw steps 3 (1 step) by then
    counter = trainer.hook(StepCounter)
    assert counter is not None and counter.steps == 3
    del trainer
    resumed = Trainer(config, tiny_scene, tmp_path / "run", CPU, resume=True, progress=False)
    assert resumed.iteration == 4 and resumed.hook(StepCounter).steps == 1  # its state came back with the checkpoint
    resumed.train()
    assert resumed.hook(StepCounter).steps == 7 and resumed.hook(StepCounter).rays > 0
