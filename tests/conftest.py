"""Shared fixtures: one tiny synthetic scene per test session (generated in well under a second)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from clusteringsdf.data.synthetic import generate_scene

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_scene_source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenes") / "tiny"
    generate_scene(out, preset="tiny", seed=0, noise="medium")
    return out


@pytest.fixture()
def tiny_scene(tiny_scene_source: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny scene (tests may corrupt it)."""
    copy = tmp_path / "scene"
    shutil.copytree(tiny_scene_source, copy)
    return copy


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device-parametrised test runs on the CPU and, when PyTorch sees one, on CUDA (skipped,
    not passed, without it)."""
    return torch.device(request.param)
