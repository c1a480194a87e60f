"""Fixed colour palettes: an id always gets the same colour (across frames, videos and meshes).

Instance ids use well-separated hues (golden-ratio steps); id 0 (background / stuff) is dark grey
and negative ids are black. Classes use a fixed table for the reduced ScanNet classes and the same
hue rule beyond it.
"""

from __future__ import annotations

import colorsys

import numpy as np

_CLASS_TABLE = {
    0: (0, 0, 0), 1: (174, 199, 232), 2: (152, 223, 138), 3: (31, 119, 180), 4: (255, 187, 120), 5: (188, 189, 34),
    6: (140, 86, 75), 7: (255, 152, 150), 8: (214, 39, 40), 9: (197, 176, 213), 10: (148, 103, 189), 11: (196, 156, 148),
    12: (23, 190, 207), 13: (178, 76, 76), 14: (247, 182, 210), 15: (66, 188, 102), 16: (219, 219, 141), 17: (140, 57, 197),
    18: (202, 185, 52), 19: (51, 176, 203), 20: (200, 54, 131), 21: (92, 193, 61),
}


def _hue_palette(size: int, seed_offset: float) -> np.ndarray:
    colors = np.zeros((size, 3), dtype=np.uint8)
    for i in range(size):
        hue = (seed_offset + i * 0.618033988749895) % 1.0
        saturation = 0.55 + 0.35 * ((i * 7) % 3) / 2
        value = 0.95 - 0.25 * ((i * 5) % 3) / 2
        colors[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    return colors


_INSTANCES = _hue_palette(4096, 0.12)
_INSTANCES[0] = (60, 60, 60)
_CLASSES = _hue_palette(256, 0.5)
for _id, _rgb in _CLASS_TABLE.items():
    _CLASSES[_id] = _rgb


def instance_color(ids: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) colours of integer instance ids."""
    ids = np.asarray(ids, dtype=np.int64)
    out = _INSTANCES[np.clip(ids, 0, None) % len(_INSTANCES)]
    out[ids < 0] = 0
    return out


def class_color(ids: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) colours of integer class ids."""
    ids = np.asarray(ids, dtype=np.int64)
    out = _CLASSES[np.clip(ids, 0, None) % len(_CLASSES)]
    out[ids < 0] = 0
    return out
