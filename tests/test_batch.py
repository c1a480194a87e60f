"""``clusteringsdf batch``: tiny scenes on two Ray workers with a corrupt scene, a batch killed with
SIGKILL and started again, and the sequential fallback without Ray. Real (tiny) trainings through
the command line; one Ray instance is shared by the module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusteringsdf import batch
from clusteringsdf.cli import main
from clusteringsdf.data.synthetic import generate_scene

ray = pytest.importorskip("ray", reason='Ray is the optional [cluster] extra: pip install -e ".[cluster]"')

TRAIN = ["--preset", "tiny", "--iters", "20", "--cpus-per-task", "1"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    """Tiny scenes a, b, d, e, f and a corrupt one, c (its poses deleted)."""
    root = tmp_path_factory.mktemp("batch_scenes")
    out = {}
    for seed, name in enumerate("abcdef"):
        out[name] = root / name
        generate_scene(out[name], preset="tiny", seed=seed, noise="medium")
    for pose in (out["c"] / "pose").iterdir():
        pose.unlink()
    (out["c"] / "pose").rmdir()
    return out


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance for the module (the batch driver reuses it in-process, or joins it by address)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _summary(runs: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((runs / batch.SUMMARY_FILE).read_text())["scenes"]}


def _checkpoints(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("ckpt_*.pt")}


def test_ray_batch_with_a_corrupt_scene(scenes, ray_address, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["batch", str(scenes["a"]), str(scenes["b"]), str(scenes["c"]), "--out", str(runs), "--workers", "2", "--mesh-resolution", "0", *TRAIN]
    assert main(args) == 1  # one scene failed, the others finished
    out = capsys.readouterr().out
    assert "as Ray tasks" in out and "2 at once, 1 CPU(s) each" in out
    rows = _summary(runs)
    for name in "ab":
        assert rows[name]["status"] == "done" and rows[name]["attempts"] == 1 and rows[name]["error"] is None
        assert set(rows[name]["scores"]) >= {"pq", "pq_things", "miou", "psnr"} and rows[name]["scores"]["psnr"] > 5
        assert rows[name]["report"] == f"{name}/report.html" and (runs / name / "report.html").is_file()
        assert "--threads 1" in (runs / "batch" / f"{name}.log").read_text()
    assert rows["c"]["status"] == "failed" and rows["c"]["attempts"] == 2  # retried once
    assert rows["c"]["error"].startswith("error: ") and "pose" in rows["c"]["error"] and "\n" not in rows["c"]["error"]
    index = (runs / "index.html").read_text()
    assert 'href="a/report.html"' in index and 'href="b/report.html"' in index and "pose" in index
    assert "http" not in index and "<script" not in index
    state = json.loads((runs / batch.STATE_FILE).read_text())
    assert {n: e["status"] for n, e in state["scenes"].items()} == {"a": "done", "b": "done", "c": "failed"}

    # the same batch again: the finished runs are skipped, the corrupt scene is tried (and fails) again
    before = {name: _checkpoints(runs / name) for name in "ab"}
    logs = {name: (runs / "batch" / f"{name}.log").read_text() for name in "ab"}
    assert main(args) == 1
    assert "a: finished earlier, skipped" in capsys.readouterr().out
    for name in "ab":
        assert _checkpoints(runs / name) == before[name] and (runs / "batch" / f"{name}.log").read_text() == logs[name]
    assert _summary(runs)["c"]["attempts"] == 4
    # the finished scenes alone: nothing to run (Ray is not even needed)
    assert main(["batch", str(scenes["a"]), str(scenes["b"]), "--out", str(runs), "--mesh-resolution", "0", *TRAIN]) == 0
    assert "nothing to run" in capsys.readouterr().out


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find left-over processes")
def test_killed_batch_resumes_without_retraining(scenes, ray_address, tmp_path):
    runs = tmp_path / "runs"
    args = ["batch", str(scenes["d"]), str(scenes["e"]), "--out", str(runs), "--workers", "1", "--mesh-resolution", "0",
            "--preset", "tiny", "--iters", "200", "--cpus-per-task", "1"]
    driver_log = tmp_path / "driver.log"
    with open(driver_log, "wb") as handle:
        driver = subprocess.Popen([sys.executable, "-m", "clusteringsdf.cli", *args, "--address", ray_address],
                                  stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    try:  # kill the driver once d has finished and e has a checkpoint
        while not (batch.is_finished(runs, "d", 0) and list((runs / "e" / "checkpoints").glob("ckpt_*.pt"))):
            assert driver.poll() is None, driver_log.read_text()
            assert time.monotonic() < deadline, "the batch did not get far enough"
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finished_d = _checkpoints(runs / "d")
    # e's training dies with its Ray task (SIGTERM: it saves a checkpoint and exits)
    deadline = time.monotonic() + 60
    while _processes_mentioning(str(runs / "e")):
        assert time.monotonic() < deadline, "an orphaned command of the killed batch kept running"
        time.sleep(0.5)
    assert not batch.is_finished(runs, "e", 0)
    stopped_at = max(int(p.stem.split("_")[1]) for p in (runs / "e" / "checkpoints").glob("ckpt_*.pt"))
    assert 0 < stopped_at < 200

    assert main([*args, "--address", ray_address]) == 0
    rows = _summary(runs)
    assert rows["d"]["status"] == rows["e"]["status"] == "done"
    assert _checkpoints(runs / "d") == finished_d  # nothing retrained that had finished
    assert (runs / "batch" / "d.log").read_text().count("attempt ") == 1
    log_e = (runs / "batch" / "e.log").read_text()
    assert f"resuming {runs / 'e'} from iteration {stopped_at}" in log_e
    assert (runs / "e" / "checkpoints" / "ckpt_0000200.pt").is_file() and (runs / "e" / "report.html").is_file()


def test_without_ray_scenes_run_one_after_another(scenes, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    runs = tmp_path / "runs"
    args = ["batch", str(scenes["f"]), str(scenes["c"]), "--out", str(runs), "--workers", "2", "--mesh-resolution", "24", *TRAIN]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "Ray is not installed" in out and "one after another (--workers 2 needs Ray)" in out
    rows = _summary(runs)
    assert rows["f"]["status"] == "done" and rows["c"]["status"] == "failed" and rows["c"]["attempts"] == 2
    assert json.loads((runs / "f" / "meshes" / "index.json").read_text())["resolution"] == 24
    log = (runs / "batch" / "f.log").read_text()
    assert "$ clusteringsdf mesh" in log and "$ clusteringsdf report" in log
    assert json.loads((runs / "batch" / "f.json").read_text())["steps"] == ["train", "mesh-24", "report-24"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's prctl")
def test_command_of_a_killed_sequential_batch_saves_and_stops(scenes, tmp_path):
    runs = tmp_path / "runs"
    code = ("import sys; sys.modules['ray'] = None; from clusteringsdf.cli import main; "
            f"main(['batch', {str(scenes['f'])!r}, '--out', {str(runs)!r}, '--preset', 'tiny', '--iters', '5000', '--mesh-resolution', '0'])")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while not list((runs / "f" / "checkpoints").glob("ckpt_*.pt")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 60
    while _processes_mentioning(str(runs / "f")):
        assert time.monotonic() < deadline, "the training of a killed batch kept running"
        time.sleep(0.2)
    log = (runs / "batch" / "f.log").read_text()
    assert "SIGTERM: stopped at iteration" in log  # it saved a checkpoint on its way out
    assert max(int(p.stem.split("_")[1]) for p in (runs / "f" / "checkpoints").glob("ckpt_*.pt")) < 5000


def test_bad_batch_arguments_are_one_line_errors(scenes, tmp_path, capsys):
    twin = tmp_path / "other" / "a"
    twin.mkdir(parents=True)
    assert main(["batch", str(scenes["a"]), str(twin), "--out", str(tmp_path / "runs")]) == 2
    assert "would share the run folder 'a'" in capsys.readouterr().err
    assert main(["batch", str(scenes["a"]), "--out", str(tmp_path / "runs"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_error_line_is_the_last_error():
    assert batch._error_line("loading\nerror: x.png: bad\nmore\n", 2) == "error: x.png: bad"
    assert batch._error_line("Traceback\nKeyError: 3\n", 1) == "KeyError: 3"
    assert batch._error_line("", -9) == "killed by signal 9"
    assert batch._error_line("", 3) == "exit code 3"
