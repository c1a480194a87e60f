"""Frames of a capture: a folder of images or a video, staged as PNG files named by frame.

Images: every file PIL can read with a common image suffix; the file stem is the frame name (two
files with the same stem are an error), EXIF orientation is applied, grey images (8 or 16 bit, PGM
included) become RGB, and all frames must have the same size. Video: decoded with the ffmpeg binary of ``imageio-ffmpeg``; one frame is kept per window
of ``every`` frames (or of ``source fps / fps`` frames), the sharpest of its window, and kept frames
whose sharpness is under ``blur_ratio`` times the median of the kept ones are dropped as blurred.
Video frames are named by their index in the video (``000120``).

Sharpness is the variance of the Laplacian of the grey image (a standard focus measure): motion blur
and defocus remove the high frequencies it measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from ..errors import DataError
from ..data import layout

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")

__all__ = ["IMAGE_SUFFIXES", "StagedFrames", "sharpness", "stage_images", "stage_video"]


@dataclass
class StagedFrames:
    """Frames written to ``folder/<name>.png``, in capture order.

    ``hw`` is the (height, width) of every frame; ``dropped`` maps frames left out to the reason
    (blur); ``source`` describes the input for the log.
    """

    folder: Path
    names: list[str]
    hw: tuple[int, int]
    source: str
    dropped: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.png"


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image of ``rgb`` (H, W, 3) uint8; higher = sharper."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(ndimage.laplace(grey).var())


def _resize_long_side(image: Image.Image, max_size: int | None) -> Image.Image:
    if not max_size or max(image.size) <= max_size:
        return image
    scale = max_size / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(size, Image.LANCZOS)


def _read_image(path: Path) -> Image.Image:
    """An image as 8-bit RGB: grey repeated over the three channels; 16-bit grey (PNG, TIFF, PGM,
    whose maxval PIL scales to 16 bits) divided by 257 (its full range)."""
    try:
        with Image.open(path) as image:
            image.load()  # decodes now: truncated files fail here
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):
                grey = np.asarray(image).astype(np.float32) / 257.0
                image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})") from None


def stage_images(folder: Path, out: Path, max_size: int | None = None, log: Callable[[str], None] = print) -> StagedFrames:
    """Copy every image of ``folder`` to ``out/<stem>.png`` (RGB, EXIF orientation applied).

    Raises:
        DataError: missing or empty folder, duplicate stems, unreadable or truncated image,
            images of different sizes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "image folder not found")
    paths: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in paths:
            raise DataError(path, f"two images share the frame name '{path.stem}' ({paths[path.stem].name} and {path.name})")
        paths[path.stem] = path
    if not paths:
        raise DataError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)})")
    names = layout.frame_sort_key(list(paths))
    out.mkdir(parents=True, exist_ok=True)
    hw: tuple[int, int] | None = None
    first = ""
    for name in names:
        image = _resize_long_side(_read_image(paths[name]), max_size)
        size = (image.size[1], image.size[0])
        if hw is None:
            hw, first = size, paths[name].name
        elif size != hw:
            raise DataError(paths[name], f"image is {size[1]}x{size[0]} but {first} is {hw[1]}x{hw[0]} (mixed resolutions)")
        image.save(out / f"{name}.png")
    assert hw is not None
    log(f"frames: {len(names)} images of {hw[1]}x{hw[0]} from {folder}")
    return StagedFrames(out, names, hw, f"images {folder}")


def stage_video(
    video: Path,
    out: Path,
    every: int | None = None,
    fps: float | None = None,
    *,
    blur_ratio: float = 0.5,
    max_size: int | None = None,
    log: Callable[[str], None] = print,
) -> StagedFrames:
    """Sample a video into ``out/<index>.png``: the sharpest frame of each window, blurred ones dropped.

    Args:
        every: window length in video frames (default: 1 frame in 10 when ``fps`` is not given).
        fps: target frames per second instead of ``every`` (window = source fps / fps).
        blur_ratio: a kept frame whose sharpness is under this share of the median of the kept
            frames is dropped (0 keeps every window's frame).

    Raises:
        DataError: missing or undecodable video, no frames.
    """
    import imageio_ffmpeg

    video = Path(video)
    if not video.is_file():
        raise DataError(video, "video file not found")
    if every is not None and fps is not None:
        raise ValueError("give --every or --fps, not both")
    try:
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = reader.__next__()
    except (OSError, RuntimeError, StopIteration) as exc:
        raise DataError(video, f"cannot decode video ({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__})") from None
    width, height = (int(v) for v in meta["size"])
    source_fps = float(meta.get("fps") or 0.0)
    if fps is not None:
        if source_fps <= 0:
            raise DataError(video, "the video does not state its frame rate; use --every N instead of --fps")
        window = max(1, int(round(source_fps / fps)))
    else:
        window = every if every is not None else 10
    if window < 1:
        raise ValueError("--every must be at least 1")
    out.mkdir(parents=True, exist_ok=True)
    kept: list[tuple[str, float]] = []
    best: tuple[float, int, np.ndarray] | None = None
    index = -1
    try:
        for index, raw in enumerate(reader):
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            score = sharpness(frame)
            if best is None or score > best[0]:
                best = (score, index, frame.copy())
            if (index + 1) % window == 0:
                kept.append(_save_frame(out, best, max_size))
                best = None
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(video, f"video is truncated or corrupt after frame {index + 1} ({str(exc).strip()[:200]})") from None
    finally:
        reader.close()
    if best is not None:
        kept.append(_save_frame(out, best, max_size))
    if not kept:
        raise DataError(video, "the video holds no decodable frame")
    median = float(np.median([s for _, s in kept]))
    dropped = {name: f"blurred (sharpness {s:.1f} < {blur_ratio:g} x median {median:.1f})" for name, s in kept if s < blur_ratio * median}
    for name in dropped:
        (out / f"{name}.png").unlink()
    names = [name for name, _ in kept if name not in dropped]
    with Image.open(out / f"{names[0]}.png") as image:
        hw = (image.size[1], image.size[0])
    log(f"frames: {len(names)} of {index + 1} video frames (1 per {window}, sharpest of each window; {len(dropped)} blurred dropped) "
        f"at {hw[1]}x{hw[0]} from {video}")
    return StagedFrames(out, names, hw, f"video {video} (1 frame per {window})", dropped)


def _save_frame(out: Path, best: tuple[float, int, np.ndarray], max_size: int | None) -> tuple[str, float]:
    score, index, frame = best
    name = f"{index:06d}"
    _resize_long_side(Image.fromarray(frame), max_size).save(out / f"{name}.png")
    return name, score
