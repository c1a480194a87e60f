"""Procedural materials and view-independent shading of the synthetic scenes.

Colour = albedo x light, where albedo = a material's base colour times a procedural texture evaluated
in the object's own frame (features of 5-30 cm: planks, stripes, checkers, smooth value noise; never
pixel-level noise) and light = ambient + two fixed directional lights (Lambertian) + a soft point light
under the ceiling (no shadows, no specular), so a surface point has the same colour from every view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("noise", "planks", "stripes", "checker", "grid", "blobs")


@dataclass(frozen=True)
class Material:
    """A base colour and a procedural pattern.

    Attributes:
        color: base RGB in [0, 1].
        pattern: one of :data:`PATTERNS`.
        scale: feature size in metres (plank width, stripe period, checker cell, noise cell, grid cell).
        strength: relative brightness modulation of the pattern.
        axis: local axis the stripes vary along, the planks are laid across, or the window grid faces.
        axis2: local axis the planks run along.
        color2: second colour of two-tone patterns (stripes, checker, grid bars, blobs); None = darker base.
        seed: decorrelates the noise of different materials.
    """

    color: tuple[float, float, float]
    pattern: str = "noise"
    scale: float = 0.2
    strength: float = 0.08
    axis: int = 0
    axis2: int = 0
    color2: tuple[float, float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern '{self.pattern}' (expected one of {', '.join(PATTERNS)})")


# ------------------------------------------------------------------------------------- noise


# Lattice values: a fixed permutation hash (period 256 cells) into a table of random values. The
# tables come from a private Generator with a fixed seed, so they never depend on global state.
_TABLE_RNG = np.random.default_rng(0x5EED)
_PERM = _TABLE_RNG.permutation(256).astype(np.int64)
_VALUES = _TABLE_RNG.random(256)
_PERM_VALUES = _VALUES[_PERM]


def _lattice(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) for integer lattice points (arrays of int64)."""
    h = _PERM[(ix + seed * 101) & 255]
    h = _PERM[(h + iy + seed * 37) & 255]
    h = _PERM[(h + iz) & 255]
    return _VALUES[h]


def value_noise(points: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth 3-D value noise in [0, 1] with lattice spacing ``cell`` metres, for points (N, 3)."""
    q = points / cell
    base = np.floor(q)
    f = q - base
    f = f * f * (3.0 - 2.0 * f)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    ix = base[:, 0].astype(np.int64) + seed * 101
    iy = base[:, 1].astype(np.int64) + seed * 37
    iz = base[:, 2].astype(np.int64)
    out = np.zeros(len(points))
    for hx, wx in ((_PERM[ix & 255], 1.0 - fx), (_PERM[(ix + 1) & 255], fx)):
        for hy, wy in ((_PERM[(hx + iy) & 255], 1.0 - fy), (_PERM[(hx + iy + 1) & 255], fy)):
            v0 = _PERM_VALUES[(hy + iz) & 255]
            v1 = _PERM_VALUES[(hy + iz + 1) & 255]
            out += (wx * wy) * (v0 + (v1 - v0) * fz)
    return out


def _two_tone(material: Material, mask: np.ndarray) -> np.ndarray:
    base = np.asarray(material.color)
    other = np.asarray(material.color2) if material.color2 is not None else base * (1.0 - material.strength * 2.0)
    return np.where(mask[:, None], other[None, :], base[None, :])


def albedo(material: Material, local: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) in [0, 1] of ``material`` at object-frame points ``local`` (N, 3)."""
    base = np.asarray(material.color, dtype=np.float64)
    s = material.scale
    # an irrational offset keeps faces that sit on a cell boundary from flickering between cells
    local = local + np.array([0.3183, 0.2718, 0.4142]) * s
    # a faint large-scale variation shared by every pattern (multi-view signal on uniform areas)
    soft = 1.0 + 0.5 * material.strength * (2.0 * value_noise(local, max(4.0 * s, 0.15), material.seed + 101) - 1.0)
    pattern = material.pattern
    if pattern == "noise":
        n = 0.65 * value_noise(local, s, material.seed) + 0.35 * value_noise(local, 0.4 * s, material.seed + 7)
        rgb = base[None, :] * (1.0 + 2.0 * material.strength * (2.0 * n - 1.0))[:, None]
    elif pattern == "planks":
        across, along = material.axis, material.axis2
        # planks run along ``along`` with width ``s`` measured along ``across``
        plank = np.floor(local[:, across] / s)
        plank_id = plank.astype(np.int64)
        zeros = np.zeros_like(plank_id)
        shift = _lattice(plank_id, zeros, zeros, material.seed) * 1.2
        segment = np.floor((local[:, along] + shift) / 1.2)
        tone = 1.0 + 1.5 * material.strength * (2.0 * _lattice(plank_id, segment.astype(np.int64), zeros, material.seed + 3) - 1.0)
        warp = value_noise(local, 0.3, material.seed + 5)
        grain = 1.0 + 0.6 * material.strength * np.sin(2.0 * np.pi * (local[:, across] / (0.23 * s) + 3.0 * warp))
        frac_across = local[:, across] / s - plank
        frac_along = (local[:, along] + shift) / 1.2 - segment
        seam = (frac_across < 0.035) | (frac_along < 0.006)
        rgb = base[None, :] * (tone * grain * np.where(seam, 0.6, 1.0))[:, None]
    elif pattern == "stripes":
        stripe = np.floor(local[:, material.axis] / (0.5 * s)).astype(np.int64) % 2 == 1
        rgb = _two_tone(material, stripe)
    elif pattern == "checker":
        cells = np.floor(local / s).astype(np.int64)
        rgb = _two_tone(material, cells.sum(axis=1) % 2 == 1)
    elif pattern == "grid":
        # window panes: bars of 5 cm every ``s`` metres on the two axes other than ``axis``
        a, b = (material.axis + 1) % 3, (material.axis + 2) % 3
        fa = np.abs(local[:, a] / s - np.round(local[:, a] / s)) * s
        fb = np.abs(local[:, b] / s - np.round(local[:, b] / s)) * s
        bar = (fa < 0.025) | (fb < 0.025)
        sky = 1.0 + material.strength * (2.0 * value_noise(local, 0.25, material.seed) - 1.0)
        rgb = np.where(bar[:, None], _two_tone(material, np.ones(len(local), bool)), base[None, :] * sky[:, None])
    else:  # blobs: a colourful smooth picture
        channels = [value_noise(local, s, material.seed + 11 * c) for c in range(3)]
        blob = np.stack(channels, axis=-1)
        other = np.asarray(material.color2) if material.color2 is not None else 1.0 - base
        mix = np.clip((blob - 0.3) * 2.0, 0.0, 1.0)
        rgb = base[None, :] * (1.0 - mix) + other[None, :] * mix
    return np.clip(rgb * soft[:, None], 0.0, 1.0)


# ------------------------------------------------------------------------------------- lighting


@dataclass(frozen=True)
class Lighting:
    """Ambient term, directional lights (direction the light travels, intensity) and a point light."""

    ambient: float = 0.5
    directions: tuple[tuple[float, float, float], ...] = ((0.45, 0.6, -1.0), (-0.7, -0.35, 0.45))
    intensities: tuple[float, ...] = (0.4, 0.2)
    point_position: tuple[float, float, float] = (0.0, 0.0, 2.2)
    point_intensity: float = 0.3
    point_falloff: float = 2.5  # metres at which the point light has half its intensity
    extra_points: tuple[tuple[float, float, float], ...] = ()  # more point lights like the first (larger spaces)

    def irradiance(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Scalar light (N,) at world points with world unit normals."""
        light = np.full(len(points), self.ambient)
        for direction, intensity in zip(self.directions, self.intensities):
            d = np.asarray(direction, dtype=np.float64)
            d = d / np.linalg.norm(d)
            light += intensity * np.maximum(normals @ -d, 0.0)
        for position in (self.point_position, *self.extra_points):
            to_light = np.asarray(position) - points
            distance = np.linalg.norm(to_light, axis=-1)
            cosine = np.maximum(np.sum(normals * to_light, axis=-1) / np.maximum(distance, 1e-6), 0.0)
            light += self.point_intensity * cosine / (1.0 + (distance / self.point_falloff) ** 2)
        return light
