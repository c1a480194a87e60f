"""Writes a prepared scene into a temporary folder beside the output and moves it into place only when
complete; a failed or interrupted ``prepare`` leaves nothing behind and never touches existing data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..data import layout
from ..errors import DataError

__all__ = ["SceneWriter", "MAX_LABEL_ID"]

MAX_LABEL_ID = 65535  # a 16-bit PNG holds no more


class SceneWriter:
    """Scene files in the Panoptic Lifting layout, written under :attr:`root` (the temporary folder).

    Machine instance ids come from one counter over all frames (as in Panoptic Lifting's data: ids
    are not consistent across views), wrapping around before they leave 16 bits.
    """

    def __init__(self, out: Path) -> None:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise DataError(out, "exists and is not an empty folder; refusing to overwrite it (choose a new output folder)")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.root = out.parent / f".{out.name}.prepare-{os.getpid()}"
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir()
        self.work = self.root / ".work"
        self.work.mkdir()
        self._next_instance = 1

    def frame(self, name: str, rgb: np.ndarray, pose: np.ndarray, depth: np.ndarray | None) -> None:
        """Colour (PNG), camera-to-world pose and optional depth (metres) of one frame."""
        layout.write_color(self.root / "color" / f"{name}.png", rgb)
        layout.write_matrix(self.root / "pose" / f"{name}.txt", pose)
        if depth is not None:
            layout.write_depth(self.root / "depth" / f"{name}.png", depth)

    def masks(self, name: str, semantics: np.ndarray, instance: np.ndarray, confidence: np.ndarray | None) -> None:
        """Machine labels of one frame; ``instance`` ids local to the frame (0 = none) are renumbered
        from the global counter."""
        local = np.unique(instance[instance > 0])
        if self._next_instance + len(local) > MAX_LABEL_ID:
            self._next_instance = 1
        lookup = np.zeros(int(instance.max(initial=0)) + 1, dtype=np.int64)
        lookup[local] = np.arange(self._next_instance, self._next_instance + len(local))
        self._next_instance += len(local)
        layout.write_label(self.root / "m2f_semantics" / f"{name}.png", semantics)
        layout.write_label(self.root / "m2f_instance" / f"{name}.png", lookup[instance])
        layout.write_probabilities(
            self.root / "m2f_probabilities" / f"{name}.npz", None,
            np.ones(instance.shape, dtype=np.float32) if confidence is None else np.clip(confidence, 0.0, 1.0),
        )

    def scene_files(
        self, k: np.ndarray, splits: dict[str, list[str]], segmentation_data: dict, report: dict, *, points: np.ndarray | None = None,
    ) -> None:
        """Intrinsics, splits, classes, ``prepare.json`` and, for a capture without depth, its sparse
        world points (N, 3) (the scene box is drawn around them)."""
        if points is not None:
            layout.write_points(self.root / layout.POINTS_FILE, points)
        layout.write_intrinsics(self.root / layout.INTRINSICS_FILE, k)
        layout.write_splits(self.root / layout.SPLITS_FILE, splits)
        layout.write_segmentation_data(self.root / layout.SEGMENTATION_FILE, segmentation_data)
        (self.root / "prepare.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    def commit(self, keep_work: bool = False) -> Path:
        """Move the finished scene into place (the work folder is dropped unless ``keep_work``)."""
        if not keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.out.exists():
            if any(self.out.iterdir()):
                raise DataError(self.out, "was filled by someone else while prepare ran; the prepared scene is left in " + str(self.root))
            self.out.rmdir()
        os.replace(self.root, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
