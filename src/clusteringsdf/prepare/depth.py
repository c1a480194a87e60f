"""Sensor depth of a capture: one file per frame, matched by stem, read as metres at the colour size.

Accepted: 16-bit PNG / TIFF / PGM in ``1 / depth_scale`` metres (ScanNet, Replica, Azure Kinect: 1000
per metre; TUM: 5000), float TIFF or ``.npy`` in metres; 0, negative and non-finite values are missing.

Registered depth (the colour camera's view, as ARKit, ScanNet's exports and most RGB-D datasets give
it): a depth map of another size than the colour frames with the same aspect ratio is resized
(nearest). Depth from a separate depth camera (Kinect, RealSense or ViSP recordings without
alignment) is reprojected into the colour camera when a :class:`DepthRegistration` is given: every
valid depth pixel is back-projected with the depth camera's intrinsics, moved into the colour
camera's frame by ``depth_to_color`` and projected with the colour intrinsics at the colour size;
where several points land on one pixel the nearest wins (a z-buffer), and colour pixels that no
depth point reaches (outside the depth camera's view, or hidden from it) stay missing (0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import layout
from ..errors import DataError

__all__ = ["DepthFrames", "DepthRegistration", "open_depth", "read_depth_intrinsics", "read_rigid_transform", "reproject_depth"]

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".pgm", ".npy")
# A depth pixel covers the colour pixels within half its projected size plus this margin (pixels)
# around where it lands: neighbouring footprints overlap a little, so that a surface seen more
# obliquely by the colour camera than by the depth camera shows no cracks.
FOOTPRINT_MARGIN = 0.25
MAX_FOOTPRINT = 16  # colour pixels per depth pixel and axis, at most
MAX_BASELINE_M = 1.0  # a depth-to-colour translation longer than this is taken for a unit mistake


@dataclass(frozen=True)
class DepthRegistration:
    """Where the depth camera is relative to the colour camera (pixel centres at integer coordinates).

    Attributes:
        k_color: colour intrinsics (3, 3) at the colour frames' size.
        depth_to_color: rigid (4, 4) transform taking points in the depth camera's frame to the
            colour camera's frame (OpenCV axes, metres): ``X_color = depth_to_color @ X_depth``.
        k_depth: depth intrinsics (3, 3) at the depth maps' size; None: the depth camera has the
            colour intrinsics and size (only the transform differs).
    """

    k_color: np.ndarray
    depth_to_color: np.ndarray
    k_depth: np.ndarray | None = None


def read_depth_intrinsics(value: str | Path) -> np.ndarray:
    """K (3, 3) from a 3x3 / 4x4 text file or from ``fx,fy,cx,cy`` (pixel centres at integers).

    Raises:
        DataError: neither a readable matrix file nor four numbers, or focal lengths not positive.
    """
    text = str(value).strip()
    if Path(text).is_file():
        return layout.read_intrinsics(Path(text))
    numbers = re.split(r"[,\s]+", text)
    try:
        fx, fy, cx, cy = (float(n) for n in numbers)
    except ValueError:
        raise DataError(text, "depth intrinsics: no such file, and not fx,fy,cx,cy (four numbers)") from None
    if not all(np.isfinite([fx, fy, cx, cy])) or fx <= 0 or fy <= 0:
        raise DataError(text, "depth intrinsics must be finite with positive focal lengths")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def read_rigid_transform(path: Path, *, invert: bool = False) -> np.ndarray:
    """A rigid 4x4 transform (a 3x4 text matrix gets the row 0 0 0 1), inverted when ``invert``.

    Raises:
        DataError: not 4x4 / 3x4, not finite, last row not 0 0 0 1, rotation not orthonormal
            within 1e-3 or a reflection, or a translation over :data:`MAX_BASELINE_M` (not metres).
    """
    path = Path(path)
    matrix = layout.read_matrix(path, "transform")
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4):
        raise DataError(path, f"transform must be a 4x4 matrix, got {matrix.shape[0]}x{matrix.shape[1]}")
    layout.check_rigid(path, matrix, "transform")
    baseline = float(np.linalg.norm(matrix[:3, 3]))
    if baseline > MAX_BASELINE_M:
        raise DataError(path, f"translation is {baseline:g} long; the depth-to-colour translation must be in metres (millimetres given?)")
    return np.linalg.inv(matrix) if invert else matrix


def reproject_depth(depth: np.ndarray, k_depth: np.ndarray, depth_to_color: np.ndarray, k_color: np.ndarray, *,
                    hw: tuple[int, int]) -> np.ndarray:
    """Depth seen by a depth camera -> depth seen by the colour camera (see the module docstring).

    Args:
        depth: (H_d, W_d) metres along the depth camera's axis, 0 = missing.
        k_depth: (3, 3) depth intrinsics; k_color: (3, 3) colour intrinsics at ``hw``.
        depth_to_color: (4, 4) rigid transform, depth-camera points -> colour-camera points.
        hw: (H, W) of the colour frames.

    Returns:
        (H, W) float32 metres along the colour camera's axis; 0 where no depth point lands.
    """
    height, width = hw
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    points = np.stack([(u - k_depth[0, 2]) / k_depth[0, 0] * z, (v - k_depth[1, 2]) / k_depth[1, 1] * z, z], axis=1)
    points = points @ depth_to_color[:3, :3].T + depth_to_color[:3, 3]
    front = points[:, 2] > 1e-6
    points, z = points[front], z[front]
    zc = points[:, 2]
    uc = k_color[0, 0] * points[:, 0] / zc + k_color[0, 2]
    vc = k_color[1, 1] * points[:, 1] / zc + k_color[1, 2]
    # colour pixels whose centre lies within the projected footprint of the depth pixel (and always the nearest one)
    lo, hi = [], []
    for centre, focal in ((uc, k_color[0, 0] / k_depth[0, 0]), (vc, k_color[1, 1] / k_depth[1, 1])):
        half = np.minimum(0.5 * focal * z / zc + FOOTPRINT_MARGIN, MAX_FOOTPRINT / 2)
        nearest = np.rint(centre)
        lo.append(np.minimum(np.ceil(centre - half), nearest).astype(np.int64))
        hi.append(np.maximum(np.floor(centre + half), nearest).astype(np.int64))
    span_x, span_y = int((hi[0] - lo[0]).max(initial=0)) + 1, int((hi[1] - lo[1]).max(initial=0)) + 1
    pixels, depths = [], []
    for dy in range(span_y):
        for dx in range(span_x):
            px, py = lo[0] + dx, lo[1] + dy
            keep = (px <= hi[0]) & (py <= hi[1]) & (px >= 0) & (px < width) & (py >= 0) & (py < height)
            pixels.append(py[keep] * width + px[keep])
            depths.append(zc[keep])
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, np.concatenate(pixels), np.concatenate(depths))  # the z-buffer
    return np.where(np.isfinite(nearest), nearest, 0.0).reshape(height, width).astype(np.float32)


class DepthFrames:
    """Depth files of a capture; :meth:`read` gives float32 (H, W) metres at the colour size ``hw``,
    reprojected into the colour camera when ``registration`` is given."""

    def __init__(self, folder: Path, names: list[str], hw: tuple[int, int], depth_scale: float = 1000.0, *,
                 registration: DepthRegistration | None = None) -> None:
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
        self.registration = registration

    def read(self, name: str) -> np.ndarray:
        path = self.paths[name]
        depth = self._read_metres(path)
        height, width = depth.shape
        if self.registration is not None:
            reg = self.registration
            if reg.k_depth is None and depth.shape != tuple(self.hw):
                raise DataError(path, f"depth is {width}x{height} but the colour frames are {self.hw[1]}x{self.hw[0]}; give the depth "
                                "camera's intrinsics with --depth-intrinsics to reproject it")
            k_depth = reg.k_color if reg.k_depth is None else reg.k_depth
            return reproject_depth(depth, k_depth, reg.depth_to_color, reg.k_color, hw=self.hw)
        if depth.shape != tuple(self.hw):
            if abs(width / height - self.hw[1] / self.hw[0]) > 0.01:
                raise DataError(path, f"depth is {width}x{height} but the colour frames are {self.hw[1]}x{self.hw[0]} (another aspect ratio: "
                                "depth of a separate depth camera needs --intrinsics, --depth-intrinsics and --depth-to-color to reproject it)")
            depth = np.asarray(Image.fromarray(depth, mode="F").resize((self.hw[1], self.hw[0]), Image.NEAREST), dtype=np.float32)
        return depth

    def _read_metres(self, path: Path) -> np.ndarray:
        if path.suffix.lower() == ".npy":
            try:
                depth = np.load(path, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise DataError(path, f"unreadable depth array ({exc})") from None
        else:
            try:
                array = _read_pgm(path) if path.suffix.lower() == ".pgm" else None
                if array is None:
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
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def open_depth(folder: Path, names: list[str], hw: tuple[int, int], *, depth_scale: float = 1000.0, intrinsics: Path | None = None,
               depth_intrinsics: str | None = None, depth_to_color: Path | None = None, color_to_depth: Path | None = None) -> DepthFrames:
    """The ``prepare`` options' sensor depth: registered, or reprojected from a separate depth camera
    when its intrinsics or its pose relative to the colour camera is given (then ``intrinsics``, the
    colour camera's K at ``hw``, is needed). Files are read and checked here, before any work."""
    registration = None
    if depth_intrinsics is not None or depth_to_color is not None or color_to_depth is not None:
        if intrinsics is None:
            raise ValueError("reprojecting depth needs the colour intrinsics")
        if depth_to_color is not None:
            transform = read_rigid_transform(depth_to_color)
        elif color_to_depth is not None:
            transform = read_rigid_transform(color_to_depth, invert=True)
        else:
            transform = np.eye(4)
        k_depth = read_depth_intrinsics(depth_intrinsics) if depth_intrinsics is not None else None
        registration = DepthRegistration(layout.read_intrinsics(Path(intrinsics)), transform, k_depth)
    depth = DepthFrames(folder, names, hw, depth_scale, registration=registration)
    if names:
        depth.read(names[0])  # a size or format problem shows now, not after the poses
    return depth


def _read_pgm(path: Path) -> np.ndarray | None:
    """The raw values of a binary (P5) PGM, which PIL would rescale to 16 bits by the header's maxval;
    None for another PGM variant (read by PIL)."""
    data = path.read_bytes()
    fields: list[bytes] = []
    position = 0
    while len(fields) < 4:
        match = re.compile(rb"\s*(#[^\n]*\n\s*)*(\S+)").match(data, position)
        if match is None:
            raise ValueError("truncated PGM header")
        fields.append(match.group(2))
        position = match.end()
    if fields[0] != b"P5":
        return None
    width, height, maxval = (int(f) for f in fields[1:])
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
    count = width * height
    body = data[position + 1 : position + 1 + count * dtype.itemsize]
    if len(body) < count * dtype.itemsize:
        raise ValueError(f"truncated PGM: {len(body)} of {count * dtype.itemsize} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(height, width).astype(np.uint16 if maxval > 255 else np.uint8)
