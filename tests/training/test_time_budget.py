"""Training by a time budget (train --minutes): the run's length is set from the step time measured
after its first steps, and every schedule stretches to it; resume stays exact."""

from __future__ import annotations

import json
import math

import pytest
import torch

from clusteringsdf.config import preset
from clusteringsdf.training import trainer as trainer_module
from clusteringsdf.training.hooks import SphereOptimisation
from clusteringsdf.training.trainer import BUDGET_TIMED_STEPS, BUDGET_TIMING_START, Trainer

CPU = torch.device("cpu")


class SteppingClock:
    """A perf_counter that advances ``seconds`` at every call (the loop reads it once per step)."""

    def __init__(self, seconds: float) -> None:
        self.now, self.seconds = 0.0, seconds

    def perf_counter(self) -> float:
        self.now += self.seconds
        return self.now


@pytest.fixture()
def one_second_steps(monkeypatch):
    clock = SteppingClock(1.0)
    monkeypatch.setattr(trainer_module, "time", clock)
    return clock


def test_a_budget_sets_the_run_length_and_the_schedules_follow(tiny_scene, tmp_path, one_second_steps):
    config = preset("tiny").with_values({"mode": "panoptic", "train.minutes": 1.0, "train.iterations": 1000, "sampler.kind": "spheres"})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    assert not trainer.length_fixed and trainer.model.spheres.warmup == 100  # provisional: 10% of 1000 steps
    result = trainer.train()
    # one second a step: timed from step 5 for 20 steps, then the 35 seconds left fill 35 more steps
    length = BUDGET_TIMING_START + BUDGET_TIMED_STEPS + (60 - (BUDGET_TIMING_START + BUDGET_TIMED_STEPS))
    assert trainer.length_fixed and result.iterations == trainer.config.train.iterations == length
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]["iterations"] == length
    lr = trainer.optimizer.param_groups[1]["lr"]
    assert lr == pytest.approx(config.train.lr * config.train.lr_final_factor, rel=1e-6)  # the decay ends with the run
    assert trainer.model.spheres.warmup == int(0.1 * length) and trainer.hook(SphereOptimisation) is not None


class SlowStartClock(SteppingClock):
    """Two seconds a step for the first ``slow`` calls, then one (the first steps of a run are dearer)."""

    def __init__(self, slow: int) -> None:
        super().__init__(2.0)
        self.calls, self.slow = 0, slow

    def perf_counter(self) -> float:
        self.calls += 1
        self.seconds = 2.0 if self.calls <= self.slow else 1.0
        return super().perf_counter()


def test_a_budget_follows_the_pace_when_the_first_steps_are_slower(tiny_scene, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", SlowStartClock(slow=41))  # the loop's start reading and 40 steps
    config = preset("tiny").with_values({"mode": "panoptic", "train.minutes": 5.0, "train.checkpoint_every": 1000})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    result = trainer.train()
    # 40 steps of 2 s, then the 220 s left at 1 s a step: the first length (150, from the slow steps) was corrected
    assert result.iterations == 260 and trainer.length_fixed and result.seconds == pytest.approx(300.0)


def test_set_run_length_stretches_the_learning_rate_decay(tiny_scene, tmp_path):
    config = preset("tiny").with_values({"train.iterations": 40})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    trainer.train(iterations=10)
    trainer.set_run_length(25)
    trainer.train()
    assert trainer.iteration == 25
    assert math.isclose(trainer.optimizer.param_groups[0]["lr"], config.train.lr * config.train.grid_lr_factor * config.train.lr_final_factor, rel_tol=1e-6)


def test_a_budgeted_run_resumes_exactly(tiny_scene, tmp_path, one_second_steps):
    config = preset("tiny").with_values({"mode": "panoptic", "train.minutes": 0.75, "train.checkpoint_every": 10})
    straight = Trainer(config, tiny_scene, tmp_path / "straight", CPU, progress=False)
    straight.train()
    one_second_steps.now = 0.0
    interrupted = Trainer(config, tiny_scene, tmp_path / "resumed", CPU, progress=False)
    interrupted.train(iterations=33)  # past the length decision; the last checkpoint is at 30
    del interrupted
    resumed_config = config.with_values({"train.iterations": straight.config.train.iterations})  # as `train --resume` reads config.json
    resumed = Trainer(resumed_config, tiny_scene, tmp_path / "resumed", CPU, resume=True, progress=False)
    assert resumed.iteration == 30 and resumed.length_fixed
    resumed.train()
    assert resumed.iteration == straight.iteration
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
