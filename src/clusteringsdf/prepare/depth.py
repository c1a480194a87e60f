"""Sensor depth of a capture: one file per frame, matched by stem, read as metres at the colour size.

Accepted: 16-bit PNG / TIFF in ``1 / depth_scale`` metres (ScanNet, Replica, Azure Kinect: 1000 per
metre; TUM: 5000), float TIFF or ``.npy`` in metres. A depth map of another size than the colour
frames with the same aspect ratio is resized (nearest); 0, negative and non-finite values are missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = ["DepthFrames"]

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


class DepthFrames:
    """Depth files of a capture; :meth:`read` gives float32 (H, W) metres at the colour size ``hw``."""

    def __init__(self, folder: Path, names: list[str], hw: tuple[int, int], depth_scale: float = 1000.0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(folder, "depth folder not found")
        if depth_scale <= 0:
            raise ValueError("--depth-scale must be positive")
        found = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in DEPTH_SUFFIXES}
        missing = [n for n in names if n not in found]
        if missing:
            raise DataError(folder, f"no depth file for {len(missing)} of {len(names)} frames (first: '{missing[0]}'; depth files are matched by name)")
        self.folder, self.paths, self.hw, self.depth_scale = folder, {n: found[n] for n in names}, hw, depth_scale

    def read(self, name: str) -> np.ndarray:
        path = self.paths[name]
        if path.suffix.lower() == ".npy":
            try:
                depth = np.load(path, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise DataError(path, f"unreadable depth array ({exc})") from None
        else:
            try:
                with Image.open(path) as image:
                    image.load()
                    array = np.asarray(image)
            except (OSError, SyntaxError, ValueError) as exc:
                raise DataError(path, f"unreadable or truncated depth image ({exc})") from None
            if array.ndim != 2:
                raise DataError(path, f"depth must be a single-channel image, got shape {array.shape}")
            if array.dtype.kind == "f":
                depth = array.astype(np.float32)
            elif array.dtype in (np.uint16, np.int32, np.uint32, np.int16):
                depth = array.astype(np.float32) / self.depth_scale
            else:
                raise DataError(path, f"depth must be 16-bit integers (1/{self.depth_scale:g} m) or float metres, got {array.dtype}")
        if depth.ndim != 2:
            raise DataError(path, f"depth must be 2-D, got shape {depth.shape}")
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        if depth.shape != tuple(self.hw):
            h, w = depth.shape
            if abs(w / h - self.hw[1] / self.hw[0]) > 0.01:
                raise DataError(path, f"depth is {w}x{h} but the colour frames are {self.hw[1]}x{self.hw[0]} (another aspect ratio)")
            depth = np.asarray(Image.fromarray(depth, mode="F").resize((self.hw[1], self.hw[0]), Image.NEAREST), dtype=np.float32)
        return depth
