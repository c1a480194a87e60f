"""Errors that would strand a user say, in one line, what is wrong and what to do next: a capture
given as a scene, a CUDA device torch cannot use, a GPU out of memory, a run folder holding another
run, a missing system library of Open3D."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from PIL import Image

from clusteringsdf.cli import main
from clusteringsdf.config import preset
from clusteringsdf.errors import ClusteringSDFError, RunError


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(folder / f"IMG_{index}.jpg")
    return folder


# ------------------------------------------------------------------------------- capture as a scene


@pytest.mark.parametrize("command", [
    ["info", "{photos}"],
    ["train", "--data", "{photos}", "--out", "{tmp}/run", "--preset", "tiny"],
    ["eval", "--scene", "{photos}", "--pred", "{photos}"],
    ["export", "--scene", "{photos}", "--format", "colmap", "--out", "{tmp}/colmap"],
])
def test_a_folder_of_photos_is_not_a_scene(command, photos, tmp_path, capsys):
    assert main([part.format(photos=photos, tmp=tmp_path) for part in command]) == 2
    err = _one_line(capsys)
    assert f"{photos}: not a prepared scene" in err and f"clusteringsdf prepare --images {photos} --out SCENE" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "colmap").exists()


def test_photos_in_color_without_poses_and_a_video_are_not_scenes(photos, tmp_path, capsys):
    capture = tmp_path / "capture"
    capture.mkdir()
    photos.rename(capture / "color")
    assert main(["info", str(capture)]) == 2
    assert f"prepare --images {capture / 'color'} --out SCENE" in _one_line(capsys)
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"")
    assert main(["info", str(video)]) == 2
    assert f"a video, not a prepared scene; run clusteringsdf prepare --video {video} --out SCENE first" in _one_line(capsys)


def test_batch_of_captures_without_prepare_says_add_prepare(photos, tmp_path, capsys):
    assert main(["batch", str(photos), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: clusteringsdf batch") and "is a capture, not a prepared scene; add --prepare" in err[-1]
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------ device


def test_cuda_with_a_cpu_build_of_torch_says_how_to_get_a_cuda_build(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    version = torch.__version__.split("+")[0]
    for command in (["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cuda"],
                    ["mesh", "--run", str(tmp_path), "--device", "cuda"],
                    ["prepare", "--images", str(tmp_path), "--out", str(tmp_path / "scene"), "--segmenter", "sam", "--device", "cuda"]):
        assert main(command) == 2, command
        err = _one_line(capsys)
        assert "is a CPU build" in err and f"pip install torch=={version} --index-url https://download.pytorch.org/whl/cu126" in err
        assert "pytorch.org" in err and "--device cpu (or auto) runs on the CPU" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "scene").exists()


def test_cuda_with_a_cuda_build_but_no_gpu_says_none_is_visible(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["render", "--run", str(tmp_path), "--device", "cuda"]) == 2
    err = _one_line(capsys)
    assert "no GPU is visible" in err and "CUDA 12.6 build" in err and "CPU build" not in err


def test_prepare_device_cuda_is_not_checked_for_the_classical_segmenter():
    from clusteringsdf.cli import _segmenter_device

    assert _segmenter_device("cuda", "classical") == "cuda"  # classical masks never use it


# ------------------------------------------------------------------------------- out of GPU memory


def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)")


def test_out_of_gpu_memory_in_training_says_what_to_lower(monkeypatch, tmp_path, capsys):
    import clusteringsdf.training.trainer as trainer

    monkeypatch.setattr(trainer, "Trainer", _out_of_memory)
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "tiny", "--quiet"]) == 1
    err = _one_line(capsys)
    rays = preset("tiny").batch.rays
    assert "error: out of GPU memory (train)" in err and "--set batch.rays=N" in err and f"now {rays}" in err
    assert "inference.render_chunk" in err and "--device cpu" in err and "internal error" not in err


def test_out_of_gpu_memory_in_mesh_render_and_eval(monkeypatch, tmp_path, capsys):
    import clusteringsdf.evaluation as evaluation
    import clusteringsdf.inference.evaluate_run as evaluate_run
    import clusteringsdf.runs as runs

    monkeypatch.setattr(runs, "load_trained_run", _out_of_memory)
    assert main(["mesh", "--run", str(tmp_path), "--resolution", "512"]) == 1
    assert "out of GPU memory (mesh): lower --resolution (now 512)" in _one_line(capsys)
    monkeypatch.setattr(evaluate_run, "render_run", _out_of_memory)
    assert main(["render", "--run", str(tmp_path), "--quiet"]) == 1
    assert f"inference.render_chunk in {tmp_path / 'config.json'}" in _one_line(capsys)
    monkeypatch.setattr(evaluation, "evaluate_predictions", _out_of_memory)
    assert main(["eval", "--scene", str(tmp_path), "--pred", str(tmp_path)]) == 1
    assert "out of GPU memory (eval)" in _one_line(capsys)


def test_other_failures_stay_internal_errors(monkeypatch, tmp_path, capsys):
    import clusteringsdf.runs as runs

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(runs, "load_trained_run", broken)
    assert main(["mesh", "--run", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("internal error: RuntimeError: something else")


# --------------------------------------------------------------------------------- a different run


def test_a_different_run_names_what_differs(tmp_path):
    from clusteringsdf.runs.folder import prepare_run_folder, run_identity

    config = preset("tiny")
    run = tmp_path / "run"
    prepare_run_folder(run, run_identity(config, tmp_path / "a"), resume=False, force=False)
    other = run_identity(config.with_values({"train.seed": 7, "train.iterations": 5}), tmp_path / "b")
    with pytest.raises(RunError) as error:
        prepare_run_folder(run, other, resume=True, force=False)
    message = str(error.value)
    assert "holds a different run" in message and "\n" not in message
    assert "train.seed 0 -> 7" in message and f"scene {tmp_path / 'a'} -> {tmp_path / 'b'}" in message
    assert "train.iterations" not in message and "--force" in message  # a longer run is the same run


# ------------------------------------------------------------------------------------------ Open3D


def test_open3d_without_libusb_says_which_system_library_to_install(monkeypatch):
    pytest.importorskip("open3d")
    from clusteringsdf.prepare.rgbd_odometry import _require_open3d

    real_import = builtins.__import__

    def no_libusb(name, *args, **kwargs):
        if name == "open3d" or name.startswith("open3d."):
            raise OSError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_libusb)
    with pytest.raises(ClusteringSDFError) as error:
        _require_open3d()
    message = str(error.value)
    assert "libusb-1.0-0" in message and "sudo apt-get install libusb-1.0-0" in message and "\n" not in message
