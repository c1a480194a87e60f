"""``clusteringsdf batch`` without Ray: ``--task-index`` tasks (one after another and two at once)
merging their rows into one summary, captures prepared first, train options passed through and
checked up front, and the GPU a Ray task asks for. Real tiny trainings through the command line."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clusteringsdf import batch
from clusteringsdf.cli import main
from clusteringsdf.data.synthetic import generate_scene
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.runs.device import describe_device

TRAIN = ["--preset", "tiny", "--iters", "20", "--cpus-per-task", "1", "--mesh-resolution", "0"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("task_scenes")
    for seed, name in enumerate("pq"):
        generate_scene(root / name, preset="tiny", seed=seed, noise="medium")
    return [root / "p", root / "q"]


def _summary(runs: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((runs / batch.SUMMARY_FILE).read_text())["scenes"]}


def _task_command(scenes: list[Path], runs: Path, index: int) -> list[str]:
    return ["batch", *map(str, scenes), "--out", str(runs), "--task-index", str(index), "--set", "loss.eikonal=0.05", "--no-diff", *TRAIN]


def test_task_index_tasks_merge_their_rows(scenes, tmp_path, capsys):
    runs = tmp_path / "one_after_another"
    assert main(_task_command(scenes, runs, 0)) == 0
    rows = _summary(runs)
    assert rows["p"]["status"] == "done" and rows["q"]["status"] == "queued"  # q's task has not run yet
    assert main(_task_command(scenes, runs, 1)) == 0
    rows = _summary(runs)
    for name in "pq":
        assert rows[name]["status"] == "done" and rows[name]["attempts"] == 1 and rows[name]["device"] == "cpu (1 thread)"
        assert rows[name]["scores"]["psnr"] > 0 and rows[name]["report"] == f"{name}/report.html"
        assert "device: cpu (1 thread)" in (runs / "batch" / f"{name}.log").read_text()
    config = json.loads((runs / "p" / "config.json").read_text())["config"]
    assert config["loss"]["eikonal"] == 0.05 and config["train"]["threads"] == 1
    assert "--set=loss.eikonal=0.05 --no-diff" in (runs / "batch" / "p.log").read_text()
    assert 'href="q/report.html"' in (runs / "index.html").read_text()
    assert main(_task_command(scenes, runs, 1)) == 0  # again: skipped
    assert "q: finished earlier, skipped" in capsys.readouterr().out

    runs = tmp_path / "at_once"  # the two tasks at the same time, as a SLURM array would start them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tasks = [subprocess.Popen([sys.executable, "-m", "clusteringsdf", *_task_command(scenes, runs, i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in (0, 1)]
    outputs = [task.communicate(timeout=600)[0].decode() for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs
    rows = _summary(runs)
    assert {name: (row["status"], row["attempts"]) for name, row in rows.items()} == {"p": ("done", 1), "q": ("done", 1)}
    state = json.loads((runs / batch.STATE_FILE).read_text())
    assert {name: entry["status"] for name, entry in state["scenes"].items()} == {"p": "done", "q": "done"}


def _update_many(runs: str, name: str, times: int) -> None:
    scenes = {n: Path(runs) / "in" / n for n in ("a", "b", "c", "d")}
    board = batch._Board(scenes, Path(runs), batch.BatchOptions())
    for _ in range(times):
        board.update(name, batch._set_status("running"))


def test_concurrent_updates_keep_every_row(tmp_path):
    (tmp_path / batch.JOB_DIR).mkdir()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_update_many, args=(str(tmp_path), name, 15)) for name in "abcd"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert {name: row["attempts"] for name, row in _summary(tmp_path).items()} == {"a": 15, "b": 15, "c": 15, "d": 15}


def test_task_and_batch_locks_exclude_each_other(tmp_path):
    (tmp_path / batch.JOB_DIR).mkdir()
    first, second = batch._BatchLock(tmp_path, shared=True), batch._BatchLock(tmp_path, shared=True)
    with pytest.raises(batch.ClusteringSDFError, match="another batch is running"):
        batch._BatchLock(tmp_path)
    first.close()
    second.close()
    driver = batch._BatchLock(tmp_path)
    with pytest.raises(batch.ClusteringSDFError, match="a batch without --task-index is running"):
        batch._BatchLock(tmp_path, shared=True)
    driver.close()


def _capture(folder: Path, source: Path, *, poses: bool = True) -> Path:
    """A capture folder: the images, depth/ and, with ``poses``, ScanNet-style pose/ and intrinsic/."""
    folder.mkdir(parents=True)
    for image in (source / "color").glob("*.png"):
        shutil.copy(image, folder / image.name)
    shutil.copytree(source / "depth", folder / "depth")
    if poses:
        shutil.copytree(source / "pose", folder / "pose")
        shutil.copytree(source / "intrinsic", folder / "intrinsic")
    return folder


def test_captures_are_prepared_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # one after another, without Ray
    source = write_capture(tmp_path / "source", num_frames=8, width=64, height=48, textured=False).root
    kitchen = _capture(tmp_path / "captures" / "kitchen", source)
    broken = _capture(tmp_path / "captures" / "broken", source, poses=False)
    runs = tmp_path / "runs"
    args = ["batch", str(kitchen), str(broken), "--prepare", "--depth-from", "depth", "--poses", "scannet", "--out", str(runs), *TRAIN]
    assert main(args) == 1
    rows = _summary(runs)
    assert rows["kitchen"]["status"] == "done" and rows["kitchen"]["scene"] == str(kitchen) and rows["kitchen"]["device"] == "cpu (1 thread)"
    assert (runs / "scenes" / "kitchen" / "splits.json").is_file() and (runs / "kitchen" / "report.html").is_file()
    prepare = json.loads((runs / "scenes" / "kitchen" / "prepare.json").read_text())
    assert prepare["poses"]["source"] == "scannet" and prepare["options"]["depth"] == str(kitchen / "depth")
    assert rows["broken"]["status"] == "failed" and rows["broken"]["attempts"] == 2
    assert rows["broken"]["error"].startswith("error: ") and "intrinsic" in rows["broken"]["error"] and "\n" not in rows["broken"]["error"]
    assert not (runs / "scenes" / "broken").exists()

    # finer meshes later: the kitchen's mesh and report steps run, its prepare and training do not
    assert main([*args[:-1], "24"]) == 1
    log = (runs / "batch" / "kitchen.log").read_text()
    assert log.count("$ clusteringsdf prepare") == 1 and log.count("$ clusteringsdf train") == 1 and "$ clusteringsdf mesh" in log
    assert batch.finished_steps(runs, "kitchen") == ["prepare", "train", "mesh-24", "report-24"]
    capsys.readouterr()


def test_bad_batch_options_fail_once_up_front(scenes, tmp_path, capsys):
    runs = tmp_path / "runs"
    cases = [
        (["--set", "loss.nosuch=1"], "loss.nosuch"),
        (["--segmenter", "sam"], "--segmenter is a prepare option: add --prepare"),
        (["--prepare", "--depth-from", "nodepth"], "no depth folder 'nodepth'"),
        (["--prepare", "--every", "0"], "--every must be >= 1"),
        (["--task-index", "2"], "--task-index 2 is not one of the 2 scene(s) given"),
    ]
    for extra, message in cases:
        assert main(["batch", *map(str, scenes), "--out", str(runs), *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        if extra[0] == "--set" or "--depth-from" in extra:  # a config or a capture: one line
            assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err, err
        else:  # options that do not go together: batch's usage, then one line
            lines = err.splitlines()
            assert lines[0].startswith("usage: clusteringsdf batch ") and lines[-1].startswith("clusteringsdf batch: error: "), err
            assert message in lines[-1], err
        assert not runs.exists()  # nothing started


class _FakeRay:
    """What :class:`batch._RayRunner` asks of Ray, on a cluster of one node with ``gpus`` GPUs."""

    def __init__(self, gpus: float) -> None:
        self.gpus, self.asked = gpus, []

    def is_initialized(self) -> bool:
        return True

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": self.gpus}}]

    def cluster_resources(self) -> dict:
        return {"CPU": 8.0, "GPU": self.gpus}

    def remote(self, *args):
        return self

    def options(self, **kwargs):
        self.asked.append(kwargs)
        return self


@pytest.mark.parametrize(("device", "gpus_per_task", "cluster_gpus", "asked"),
                         [("auto", None, 2.0, 1.0), ("auto", None, 0.0, 0.0), ("cpu", None, 2.0, 0.0), ("auto", 0.5, 2.0, 0.5)])
def test_ray_tasks_ask_for_a_gpu_where_there_are_gpus(device, gpus_per_task, cluster_gpus, asked):
    ray = _FakeRay(cluster_gpus)
    runner = batch._RayRunner(ray, batch.BatchOptions(workers=2, device=device, gpus_per_task=gpus_per_task))
    runner.submit(batch.SceneJob("a", "/a", "/runs", runner.cpus, device, (), 0, 1))
    assert ray.asked[-1]["num_gpus"] == asked and ray.asked[-1]["num_cpus"] == 4
    assert ("GPU(s) each" in runner.description) == bool(asked)


def test_device_line():
    assert describe_device(torch.device("cpu"), 3) == "cpu (3 threads)"
    assert batch._device_line("loading\ndevice: cpu (1 thread)\ntrained 10 iterations\n") == "cpu (1 thread)"
    assert batch._device_line("error: x\n") is None
    if torch.cuda.is_available():
        assert describe_device(torch.device("cuda")).startswith("cuda:0 (") and "GiB)" in describe_device(torch.device("cuda"))
