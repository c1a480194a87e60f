"""Shared fixtures: one tiny synthetic scene per test session (generated in well under a second)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from clusteringsdf.data.synthetic import generate_scene

# Two cores: one test process uses both; under pytest-xdist (`-n 2`) each worker takes one.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


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


DOCUMENTS = [Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"]


def documented_example(path: str) -> dict:
    """Run the ```python block of CONTRIBUTING.md that starts with ``# <path>`` as that module of
    the package would run, and return its namespace: the documented example is the code the test
    exercises."""
    for document in DOCUMENTS:
        if not document.is_file():
            continue
        for block in re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.S):
            if block.startswith(f"# {path}\n"):
                module = path.removeprefix("src/").removesuffix(".py").replace("/", ".")
                namespace = {"__name__": module, "__package__": module.rpartition(".")[0]}
                exec(compile(block, f"{document.name}: {path}", "exec"), namespace)
                return namespace
    raise AssertionError(f"no python block starting with '# {path}' in {', '.join(d.name for d in DOCUMENTS)}")
