"""The method registry: every mode is one Method class, a new method needs one file and one registry
line (CONTRIBUTING.md's "Adding a method" example, run here), and run folders written before the
model/method split still render, mesh and report."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from conftest import documented_example

from clusteringsdf.cli import build_parser, main
from clusteringsdf.config import preset
from clusteringsdf.inference.evaluate_run import evaluate_run
from clusteringsdf.methods import METHODS, Method
from clusteringsdf.runs import latest_checkpoint, load_trained_run
from clusteringsdf.training.trainer import Trainer

CPU = torch.device("cpu")


def test_every_registered_method_is_named_by_its_key_and_offered_by_the_cli():
    for name, cls in METHODS.items():
        assert issubclass(cls, Method) and cls.name == name
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    mode = next(a for a in train._actions if a.dest == "mode")
    assert list(mode.choices) == list(METHODS)


def test_a_new_method_is_one_class_and_one_registry_line(tiny_scene, tmp_path, monkeypatch):
    """CONTRIBUTING.md's example, as written there."""
    monkeypatch.setitem(METHODS, "semantic_head", documented_example("src/clusteringsdf/methods/semantic_head.py")["SemanticHead"])
    config = preset("tiny").with_values({"mode": "semantic_head", "train.iterations": 6})
    trainer = Trainer(config, tiny_scene, tmp_path / "run", CPU, progress=False)
    trainer.train()
    terms = set(trainer.step().keys())
    assert "semantic" in terms and not terms & {"diff", "opacity_bce", "contrastive"}
    assert int(trainer.method.votes.votes.sum()) == 0  # no opacities rendered, so no channel votes
    scores = evaluate_run(tmp_path / "run", CPU, trained=trainer.trained_run(), progress=False)
    assert scores["frames"] == 3 and scores["pq_things"] == 0.0  # classes only: no thing instances
    assert main(["render", "--run", str(tmp_path / "run"), "--quiet"]) == 0  # the CLI knows the new mode too


def _downgrade(state: dict) -> dict:
    """A checkpoint as the Renderer wrote it before the model/method split (format 1)."""
    old_model = {k: v for k, v in state["model"].items() if not k.startswith("volume.")}
    old_model["channel_votes"] = state["method"]["votes.votes"]
    slow = {k: v for k, v in state["method"].items() if k.startswith("slow_embedding_head.")}
    if not slow:  # the old Renderer held the contrastive EMA head in every mode
        shapes = {"0.weight": (32, 16), "0.bias": (32,), "2.weight": (3, 32), "2.bias": (3,)}  # the tiny preset's
        slow = {f"slow_embedding_head.{k}": torch.randn(shape) for k, shape in shapes.items()}
    old_model.update(slow)
    volume = state["model"]["volume.values"] if bool(state["model"]["volume.ready"]) else None
    old = {k: v for k, v in state.items() if k not in ("method", "format")}
    return {**old, "model": old_model, "volume": volume}


def _hash(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("mode", ["panoptic", "contrastive"])
def test_run_folders_from_before_the_split_still_render_mesh_and_report(tiny_scene, tmp_path, mode):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--mode", mode, "--iters", "8", "--quiet"]) == 0
    assert main(["render", "--run", str(run), "--out", str(tmp_path / "new"), "--quiet"]) == 0
    path = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    torch.save(_downgrade(state), path)
    old = torch.load(path, weights_only=True)
    assert "method" not in old and "channel_votes" in old["model"]
    trained = load_trained_run(run, CPU)
    assert torch.equal(trained.method.votes.votes, state["method"]["votes.votes"])
    assert trained.model.volume.is_ready
    assert main(["render", "--run", str(run), "--out", str(tmp_path / "old"), "--quiet"]) == 0
    assert _hash(tmp_path / "old") == _hash(tmp_path / "new")  # the same images and label maps
    assert main(["mesh", "--run", str(run), "--resolution", "32"]) == 0
    assert main(["report", "--run", str(run), "--mesh-resolution", "32", "--quiet"]) == 0


def test_a_checkpoint_of_another_network_is_a_one_line_error(tiny_scene, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "2", "--quiet"]) == 0
    path = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    state["model"]["field.grid.table"] = state["model"]["field.grid.table"][:10]
    torch.save(state, path)
    assert main(["render", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit this run's network" in err


def test_without_a_semantic_head_classes_come_from_the_channel_votes():
    """Instance mode trains no semantic head: a rendered ray takes the class its channel was voted
    (so an instance run alone, or a class-agnostic scene, still gets classes and instance ids)."""
    from clusteringsdf.methods import Instance
    from clusteringsdf.model import RenderOutput

    method = Instance(preset("tiny"), num_classes=4, channels=3)
    assert not method.render_request(normals=False).semantics
    method.votes.votes[1, 3] = 5.0  # channel 1 is class 3, channel 2 has no votes
    opacity = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    out = RenderOutput(rgb=torch.zeros(3, 3), depth=torch.zeros(3), weights=torch.zeros(3, 2), z=torch.zeros(3, 2), opacity=opacity)
    scores = method.class_scores(out)
    assert scores.argmax(-1).tolist() == [3, 0, 0] and torch.equal(scores.sum(-1), torch.ones(3))



def test_surface_on_a_larger_channel_goes_to_it_when_near_what_it_owns():
    from scipy.spatial import cKDTree

    from clusteringsdf.inference.channels import _host

    cells = np.array([[0, 0, i] for i in range(10)])
    trees = {5: cKDTree(np.array([[0, 0.5, 30]])), 6: cKDTree(np.array([[0, 0.5, 2]])), 7: cKDTree(np.array([[0, 0.5, 5]]))}
    assert _host(cells, [(5, 0.9)], trees) is None  # far from what 5 owns
    assert _host(cells, [(6, 0.5)], trees) is None  # near, but 6's surface misses these cells
    assert _host(cells, [(6, 0.9)], trees) == 6  # 6 of the 10 cells lie within 4 cells of 6's
    assert _host(cells, [(6, 0.9), (7, 0.9)], trees) == 7  # 7 of them within 4 of 7's
