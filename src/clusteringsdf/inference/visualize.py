"""Turn rendered maps into uint8 pictures and tile them side by side (videos, report pages).

Every function returns a uint8 image (H, W, 3). Label colours come from the fixed palettes in
:mod:`.palette`, so an id keeps its colour across frames, videos and meshes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .palette import class_color, instance_color


def color_image(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] or uint8 -> uint8."""
    if rgb.dtype == np.uint8:
        return rgb
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def depth_image(depth: np.ndarray, far: float) -> np.ndarray:
    """(H, W) depth -> turbo colour map over the fixed range [0, far] (0 / invalid = black)."""
    from matplotlib import colormaps

    scaled = np.clip(depth / max(far, 1e-6), 0.0, 1.0)
    out = np.round(colormaps["turbo"](scaled)[..., :3] * 255).astype(np.uint8)
    out[~(depth > 0)] = 0
    return out


def normal_image(normal: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals in [-1, 1] -> uint8 (n + 1) / 2."""
    return np.round(np.clip((normal + 1.0) * 0.5, 0.0, 1.0) * 255).astype(np.uint8)


def instance_image(ids: np.ndarray) -> np.ndarray:
    return instance_color(ids)


def semantic_image(classes: np.ndarray) -> np.ndarray:
    return class_color(classes)


def tile(images: list[np.ndarray], titles: list[str] | None = None, gap: int = 4) -> np.ndarray:
    """Images of one height side by side with a white gap; optional caption strip on top."""
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    caption = 14 if titles else 0
    canvas = np.full((height + caption, width, 3), 255, dtype=np.uint8)
    x = 0
    for image in images:
        canvas[caption : caption + image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    if titles:
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        x = 0
        for image, title in zip(images, titles):
            draw.text((x + 2, 1), title, fill=(0, 0, 0))
            x += image.shape[1] + gap
        canvas = np.asarray(picture).copy()
    return canvas
