"""Training on the tiny scene: end to end, exact resume, refusal to overwrite, NaN handling, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from clusteringsdf.cli import main
from clusteringsdf.config import preset
from clusteringsdf.errors import RunError
from clusteringsdf.methods import common
from clusteringsdf.runs import latest_checkpoint, load_checkpoint
from clusteringsdf.training.trainer import Trainer

CPU = torch.device("cpu")


def tiny_config(iterations: int = 12, mode: str = "objectsdf"):
    return preset("tiny").with_values(
        {"mode": mode, "data.labels": "gt", "train.iterations": iterations, "train.checkpoint_every": 4, "batch.rays": 64}
    )


def test_tiny_preset_trains_end_to_end_with_eval(tiny_scene, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--preset", "tiny", "--labels", "gt", "--eval", "--quiet"])
    assert code == 0
    scores = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    for key in ("pq", "sq", "rq", "miou", "psnr", "depth_abs_rel", "frames"):
        assert key in scores
    assert scores["frames"] == 3
    assert (tmp_path / "run" / "eval" / "pred_instance").is_dir()
    geometry = scores["geometry"]  # the scene has a GT mesh: meshed and scored too
    assert set(geometry["scene"]) == {"chamfer_l1", "fscore", "precision", "recall"} and geometry["mesh_resolution"] == 32
    assert geometry["objects"]["gt_instances"] >= 3
    assert "Geometry against the GT mesh" in (tmp_path / "run" / "report.html").read_text()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") >= 1
    assert any((tmp_path / "run" / "tb").iterdir())


@pytest.mark.parametrize("mode", ["panoptic", "semantic", "contrastive"])
def test_every_mode_takes_steps(tiny_scene, tmp_path, mode):
    config = tiny_config(3, mode).with_values({"data.labels": "m2f"})
    trainer = Trainer(config, tiny_scene, tmp_path / mode, CPU, progress=False)
    trainer.train()
    assert trainer.iteration == 3
    assert latest_checkpoint(tmp_path / mode) is not None


def test_instance_mode_with_separation_finds_places_and_trains_the_term(tiny_scene, tmp_path):
    config = tiny_config(2, "instance").with_values({"data.labels": "m2f", "clustering.separation": 1.0})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    places = trainer.store.targets.get("place")
    assert places is not None and int(places.max()) >= 0  # the tiny scene's things are seen from several frames
    assert "separation" in trainer.step()
    off = Trainer(tiny_config(2, "instance").with_values({"data.labels": "m2f"}), tiny_scene, tmp_path / "off", CPU, progress=False)
    assert "place" not in off.store.targets and "separation" not in off.step()


def test_the_place_seed_acts_from_its_channel_count_and_fades_out_at_its_end(tiny_scene, tmp_path):
    values = {"data.labels": "m2f", "clustering.place_seed": 1.0, "clustering.place_seed_end": 0.5, "clustering.place_seed_channels": 9}
    few = Trainer(tiny_config(4, "instance").with_values(values), tiny_scene, tmp_path / "few", CPU, progress=False)
    assert "place" not in few.store.targets and "place_seed" not in few.step()  # the tiny preset's 8 channels
    values["clustering.place_seed_channels"] = 8
    trainer = Trainer(tiny_config(4, "instance").with_values(values), tiny_scene, tmp_path / "run", CPU, progress=False)
    assert "place" in trainer.store.targets
    seen = []
    for _ in range(4):
        terms = trainer.step()
        seen.append("place_seed" in terms)
        assert "separation" not in terms  # its own weight is 0
    assert seen == [True, True, False, False]  # progress 0 and 0.25 of the run, not from 0.5 on


def state_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    states = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    states.update({f"method.{k}": v for k, v in trainer.method.state_dict().items()})
    return {k: v.clone() for k, v in states.items()}


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_scene, tmp_path):
    config = tiny_config(12, "panoptic").with_values({"data.labels": "m2f"})
    straight = Trainer(config, tiny_scene, tmp_path / "straight", CPU, progress=False)
    straight.train()

    interrupted = Trainer(config, tiny_scene, tmp_path / "resumed", CPU, progress=False)
    interrupted.train(iterations=6)  # killed after step 6: the last checkpoint is at step 4
    del interrupted
    resumed = Trainer(config, tiny_scene, tmp_path / "resumed", CPU, resume=True, progress=False)
    assert resumed.iteration == 4
    resumed.train()
    a, b = state_tensors(straight), state_tensors(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_kill_minus_nine_loses_at_most_one_interval(tiny_scene, tmp_path):
    config = tiny_config(12)
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    trainer.train(iterations=7)  # checkpoints at 4; iteration 5-7 are "lost" when the process dies
    del trainer
    resumed = Trainer(config, tiny_scene, tmp_path / "run", CPU, resume=True, progress=False)
    assert resumed.iteration == 4


def test_refuses_to_overwrite_another_run(tiny_scene, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(tiny_config(4), tiny_scene, run, CPU, progress=False).train()
    with pytest.raises(RunError, match="already holds a run"):
        Trainer(tiny_config(4), tiny_scene, run, CPU, progress=False)
    other = tiny_config(4).with_values({"train.seed": 7})
    with pytest.raises(RunError, match="different run"):
        Trainer(other, tiny_scene, run, CPU, resume=True, progress=False)
    code = main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "already holds a run" in err and len(err.strip().splitlines()) == 1
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and load_checkpoint(checkpoint, CPU)["iteration"] == 4
    # --force keeps the old run aside
    Trainer(tiny_config(4), tiny_scene, run, CPU, force=True, progress=False)
    assert any(p.name.startswith("run.replaced-") for p in tmp_path.iterdir())


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_scene, tmp_path, monkeypatch):
    config = tiny_config(12)
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    original = common.reconstruction_terms

    def poisoned(out, rays, loss):
        terms = original(out, rays, loss)
        if trainer.iteration >= 6:
            terms["rgb"] = terms["rgb"]._replace(value=terms["rgb"].value * float("nan"))
        return terms

    monkeypatch.setattr(common, "reconstruction_terms", poisoned)
    with pytest.raises(RunError, match="non-finite at iteration 7"):
        trainer.train()
    checkpoint = latest_checkpoint(tmp_path / "run")
    state = load_checkpoint(checkpoint, CPU)
    assert state["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tiny_scene, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "clusteringsdf.cli", "train", "--data", str(tiny_scene), "--out", str(run),
               "--preset", "tiny", "--labels", "gt", "--iters", "100000", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert "SIGTERM" in err.decode()
    state = load_checkpoint(latest_checkpoint(run), CPU)
    stopped_at = state["iteration"]
    assert stopped_at > 0
    resume = [sys.executable, "-m", "clusteringsdf.cli", "train", "--data", str(tiny_scene), "--out", str(run), "--resume",
              "--iters", str(stopped_at + 3), "--quiet"]
    finished = subprocess.run(resume, capture_output=True, env=env, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode()
    assert load_checkpoint(latest_checkpoint(run), CPU)["iteration"] == stopped_at + 3


def test_run_identity_ignores_render_settings_and_fills_keys_an_older_config_lacks(tmp_path):
    from clusteringsdf.runs.folder import run_identity, same_run

    config = preset("tiny")
    identity = run_identity(config, tmp_path)
    older = json.loads(json.dumps(identity))
    del older["config"]["inference"]  # written before the section existed
    del older["config"]["clustering"]["compact"]  # a key added later: its default applies
    config = config.with_values({"clustering.compact": 0.0 if config.clustering.compact else 1.0})
    assert not same_run(older, run_identity(config, tmp_path))  # a changed objective is another run
    config = preset("tiny")
    config = config.with_values({"inference.min_segment_fraction": 0.01, "train.iterations": config.train.iterations + 100})
    assert same_run(older, run_identity(config, tmp_path))
    older["config"]["clustering"]["unknown_key"] = 1
    assert not same_run(older, run_identity(config, tmp_path))


def test_a_scene_without_ground_truth_trains_renders_and_reports(tiny_scene, tmp_path, capsys):
    """A prepared colour-only capture has no rs_* maps and no depth: --eval renders, scores the
    held-out views (PSNR; depth between neighbouring views) and writes the report."""
    import shutil

    from clusteringsdf.data import layout

    for folder in ("rs_semantics", "rs_instance", "depth"):
        shutil.rmtree(tiny_scene / folder)
    (tiny_scene / "gt_mesh.ply").unlink()  # nor a GT mesh (scoring the untrained mesh of the frusta's box would take minutes)
    splits = layout.read_splits(tiny_scene / "splits.json")  # neighbouring test views (the tiny orbit's every 4th do not overlap)
    layout.write_splits(tiny_scene / "splits.json", {"train": [n for n in splits["train"] if n not in ("0001", "0002")], "test": ["0000", "0001", "0002"]})
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--iters", "4", "--eval", "--quiet"]) == 0
    scores = json.loads((run / "eval" / "metrics.json").read_text())
    assert "no ground truth" in scores["note"] and scores["pq"] is None and scores["miou"] is None
    assert 5 < scores["psnr"] < 40 and 0 <= scores["depth_consistency"] <= 1 and "depth_abs_rel" not in scores
    assert len(list((run / "eval" / "pred_instance").glob("*.png"))) == 3
    assert "no ground truth" in (run / "report.html").read_text()


def test_a_scene_without_classes_trains_instance_mode_by_default(tiny_scene, tmp_path):
    from clusteringsdf.data import layout
    from clusteringsdf.data.classes import class_agnostic_data

    layout.write_segmentation_data(tiny_scene / "segmentation_data.pkl", class_agnostic_data())
    for folder in ("m2f_semantics", "rs_semantics"):  # "object" where there is an instance, background elsewhere
        instances = "m2f_instance" if folder.startswith("m2f") else "rs_instance"
        for path in (tiny_scene / instances).glob("*.png"):
            labels = layout.read_label(path)
            layout.write_label(tiny_scene / folder / path.name, np.where(labels > 0, 2, 1))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--iters", "4", "--eval", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["config"]["mode"] == "instance"
    scores = json.loads((run / "eval" / "metrics.json").read_text())
    assert scores["class_agnostic"] is True
