"""The training health checks: a stalled colour loss, rays ending at the far bound and surfaces much
smaller than the scene box each warn once, with one line, printed and kept in RUN/metrics.jsonl;
healthy runs do not warn; a resumed run does not warn again."""

from __future__ import annotations

import json
import math

import torch

from clusteringsdf.config import preset
from clusteringsdf.inference.report import read_training_log
from clusteringsdf.model import RenderOutput
from clusteringsdf.model.samplers import SdfVolume
from clusteringsdf.sampling.rays import RayBatch
from clusteringsdf.training.hooks import TrainingHealth, health
from clusteringsdf.training.trainer import Trainer

CPU = torch.device("cpu")
RUN = 1000  # steps: warm-up 300, window 100 (10 blocks)


def mse_of(psnr_db: float) -> float:
    return 10.0 ** (-psnr_db / 10.0)


def feed(hook: TrainingHealth, psnr_at, far: float = 0.1) -> list[str]:
    """Every block of the hook's run; psnr_at(step) is the blocks' PSNR. Returns the warnings."""
    warnings = []
    for steps in range(health.BLOCK_STEPS, hook.iterations + 1, health.BLOCK_STEPS):
        hook.end_block(steps, mse_of(psnr_at(steps)), far)
        warnings += hook.take_warnings()
    return warnings


def test_a_stalled_colour_loss_warns_once():
    warnings = feed(TrainingHealth(RUN), lambda steps: 16.8 + 0.05 * math.sin(steps))  # a grey blur from the start
    assert len(warnings) == 1
    assert "stalled at 16.8 dB PSNR" in warnings[0] and "step 500 of 1000" in warnings[0]  # judged right after the warm-up
    assert "info SCENE" in warnings[0] and "--depth" in warnings[0] and "--iters" in warnings[0] and "\n" not in warnings[0]


def test_a_colour_loss_that_stalls_later_warns_when_it_stalls():
    warnings = feed(TrainingHealth(RUN), lambda steps: 12.0 + min(steps, 500) / 100)  # climbs to 17 dB by step 500, then flat
    assert len(warnings) == 1 and "step 600 of 1000" in warnings[0]  # 17 dB over the window of steps 501-600, 0 gained


def test_improving_or_good_runs_do_not_warn():
    assert feed(TrainingHealth(RUN), lambda steps: 12.0 + steps / 100) == []  # still improving under the floor
    assert feed(TrainingHealth(RUN), lambda steps: 24.0) == []  # flat, but above the floor
    assert feed(TrainingHealth(RUN, photometric=False), lambda steps: 10.0) == []  # a run without the colour loss
    assert feed(TrainingHealth(200), lambda steps: 10.0) == []  # shorter than MIN_STEPS: never judged


def test_rays_ending_at_the_far_bound_warn_once():
    warnings = feed(TrainingHealth(RUN), lambda steps: 25.0, far=0.8)
    assert len(warnings) == 1 and "80% of the training rays end at the far side of the scene box" in warnings[0]
    assert feed(TrainingHealth(RUN), lambda steps: 25.0, far=0.3) == []


def test_after_step_measures_colour_error_and_far_rays():
    """MSE of the rendered colours (clamped to [0, 1]) and the share of rays ending within FAR_BAND of far."""
    r = 8
    rays = RayBatch(
        origins=torch.zeros(r, 3), directions=torch.tensor([[0.0, 0.0, 1.0]]).expand(r, 3), cam_to_world=torch.eye(3).expand(r, 3, 3),
        dz=torch.ones(r), near=torch.zeros(r), far=torch.full((r,), 2.0), frame=torch.zeros(r, dtype=torch.int64),
        pixel=torch.zeros(r, 2, dtype=torch.int64), rgb=torch.full((r, 3), 0.5),
    )
    depth = torch.tensor([0.5, 1.0, 1.5, 1.9, 1.97, 2.0, 2.0, 2.0])  # the last four within 2% of 2.0
    out = RenderOutput(rgb=torch.full((r, 3), 0.6), depth=depth, weights=torch.ones(r, 1), z=torch.ones(r, 1))
    hook = TrainingHealth(RUN)
    seen = []
    hook.end_block = lambda steps, mse, far: seen.append((steps, mse, far))
    for iteration in range(health.BLOCK_STEPS):
        hook.after_step(iteration, rays, out)
    (steps, mse, far), = seen
    assert steps == health.BLOCK_STEPS and math.isclose(mse, 0.01, rel_tol=1e-5) and far == 0.5
    out.rgb = torch.full((r, 3), 1.7)  # rendered colour past 1 counts as 1
    for iteration in range(health.BLOCK_STEPS, 2 * health.BLOCK_STEPS):
        hook.after_step(iteration, rays, out)
    assert math.isclose(seen[-1][1], 0.25, rel_tol=1e-5)


def volume_of(sdf, half_size: float = 2.0, resolution: int = 49) -> SdfVolume:
    volume = SdfVolume(torch.tensor([[-half_size] * 3, [half_size] * 3]), resolution)
    volume.update(sdf)
    return volume


def sphere(radius: float):
    return lambda p: p.norm(dim=-1) - radius


def room(half_size: float):
    """An inside-out box (positive inside), like the background channel of a room."""
    return lambda p: half_size - p.abs().amax(dim=-1)


def box_warnings(volume: SdfVolume) -> list[str]:
    hook = TrainingHealth(RUN, volume)
    hook.check_box(400)
    return hook.take_warnings()


def test_surface_extent_is_the_zero_levels_span_in_the_box():
    extent = health.surface_extent(volume_of(sphere(0.5)))  # box 4 wide: the sphere spans a quarter of it on every axis
    assert all(abs(e - 0.25) < 0.01 for e in extent)
    assert health.surface_extent(volume_of(sphere(0.01), resolution=48)) == [0.0, 0.0, 0.0]  # between the vertices: no sign change


def test_a_small_sphere_in_a_big_box_warns_and_a_room_filling_one_does_not():
    small = box_warnings(volume_of(sphere(0.16)))  # 0.32 of a box 4 wide: 8% of it
    assert len(small) == 1 and "span only 8% x 8% x 8% of the scene box" in small[0] and "--depth" in small[0]
    assert box_warnings(volume_of(room(1.6))) == []  # walls at 80% of the box
    assert box_warnings(volume_of(lambda p: torch.minimum(room(1.6)(p), sphere(0.15)(p)))) == []  # a small object in a room
    assert box_warnings(volume_of(sphere(0.9))) == []  # an object of 45% of the box
    nothing = box_warnings(volume_of(lambda p: torch.ones(p.shape[0])))
    assert len(nothing) == 1 and "nowhere inside the scene box" in nothing[0]
    assert box_warnings(SdfVolume(torch.tensor([[-2.0] * 3, [2.0] * 3]), 8)) == []  # not evaluated yet: nothing to judge


def test_the_box_check_runs_after_the_warm_up_then_once_per_window():
    checked = []
    hook = TrainingHealth(RUN, volume_of(sphere(0.15)))
    hook.check_box = checked.append
    feed(hook, lambda steps: 25.0)
    assert checked == [500, 600, 700, 800, 900, 1000]


def test_a_hooks_warnings_are_printed_and_logged_once_and_not_again_after_a_resume(tiny_scene, tmp_path, capsys, monkeypatch):
    """With a floor no run reaches, the stall check fires in a tiny run: one stderr line and one
    line of metrics.jsonl; resumed from a checkpoint after it, the run does not warn again."""
    monkeypatch.setattr(health, "MIN_STEPS", 10)
    monkeypatch.setattr(health, "MIN_WINDOW_STEPS", 10)
    monkeypatch.setattr(health, "PSNR_FLOOR_DB", 200.0)
    monkeypatch.setattr(health, "STALL_MARGIN_DB", 200.0)
    monkeypatch.setattr(health, "FAR_SHARE", 2.0)  # the other checks never fire here
    monkeypatch.setattr(health, "SURFACE_EXTENT_SHARE", 0.0)
    config = preset("tiny").with_values({"mode": "panoptic", "data.labels": "gt", "train.iterations": 24, "train.checkpoint_every": 20, "batch.rays": 64})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    assert isinstance(trainer.hooks[-1], TrainingHealth)
    trainer.train(iterations=22)  # warned at step 20 (a warm-up of 10 steps, two windows of 10 behind it), then a checkpoint
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    warnings = [r for r in records if "warning" in r]
    assert len(warnings) == 1 and warnings[0]["iteration"] == 20 and "stalled" in warnings[0]["warning"]
    assert capsys.readouterr().err.count("warning: training has stalled") == 1
    del trainer
    resumed = Trainer(config, tiny_scene, tmp_path / "run", CPU, resume=True, progress=False)
    assert resumed.iteration == 20 and "photometric_stall" in resumed.hook(TrainingHealth).warned
    resumed.train()
    assert "warning:" not in capsys.readouterr().err
    records, warnings = read_training_log(tmp_path / "run" / "metrics.jsonl")  # what the report shows
    assert len(warnings) == 1 and warnings[0].startswith("training, step 20: training has stalled")
    assert records[-1]["iteration"] == 24 and all("warning" not in r for r in records)
