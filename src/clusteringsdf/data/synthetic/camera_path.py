"""A handheld-scan-like camera trajectory: a smooth closed loop through the free middle of the room.

The camera walks once around a wobbly ellipse that keeps ``min_clearance`` metres (horizontally) from
every free-standing object and wall, at eye height 1.3-1.7 m with slow bobbing, looking outward (away
from the loop centre, i.e. at the walls and the furniture along them) with a slow yaw sweep, pitched
down 10-35 degrees, with a small roll jitter (< 3 degrees). Consecutive frames overlap strongly.
In two connected rooms (:mod:`.two_rooms`) the loop is two half ellipses that pass through both
doorways of the partition (:class:`DoorwayLoop`), so the camera walks through both rooms.

Poses are camera-to-world 4x4 matrices in the OpenCV convention (x right, y down, z forward) in the
z-up world frame of :mod:`.room`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .room import Room, clearance_map


@dataclass(frozen=True)
class CameraPathConfig:
    """Ranges of the trajectory (angles in degrees, lengths in metres)."""

    height_mean: tuple[float, float] = (1.45, 1.55)
    bob_amplitude: float = 0.08  # plus a slower 0.03 m drift; stays within 1.3-1.7 m
    pitch_mean: tuple[float, float] = (21.0, 23.5)
    pitch_swing: float = 8.5  # plus 2.5 degrees of faster wobble: 10-35 degrees overall
    yaw_swing: float = 17.0
    roll: float = 1.6  # plus 0.8 degrees of faster jitter: < 3 degrees
    clearance: float = 1.0  # preferred horizontal distance to furniture and walls
    min_clearance: float = 0.55  # the least accepted when the preferred one leaves no room
    min_radius: float = 0.3


def look_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes) looking along heading ``yaw`` (radians, from +x towards
    +y), pitched down by ``pitch`` and rolled by ``roll`` about the optical axis."""
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, forward], axis=1)


def _free_interval(clear: np.ndarray, coords: np.ndarray, start: int, threshold: float) -> tuple[float, float]:
    """Contiguous run of ``clear >= threshold`` around index ``start`` as coordinate bounds."""
    lo = hi = start
    while lo > 0 and clear[lo - 1] >= threshold:
        lo -= 1
    while hi < len(clear) - 1 and clear[hi + 1] >= threshold:
        hi += 1
    return float(coords[lo]), float(coords[hi])


@dataclass(frozen=True)
class Loop:
    """The walking loop: centre (2,), radii (2,), wobble amplitudes/phases, start angle and direction."""

    centre: np.ndarray
    radii: np.ndarray
    wobble: tuple[float, float, float, float]
    start: float
    direction: float

    def positions(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """xy positions (N, 2) and loop angles (N,) at loop fractions ``s`` in [0, 1)."""
        theta = self.start + self.direction * 2.0 * np.pi * s
        a2, p2, a3, p3 = self.wobble
        scale = 1.0 + a2 * np.sin(2.0 * theta + p2) + a3 * np.sin(3.0 * theta + p3)
        xy = self.centre + np.stack([np.cos(theta), np.sin(theta)], -1) * self.radii * scale[:, None]
        return xy, theta


def plan_loop(room: Room, rng: np.random.Generator, config: CameraPathConfig = CameraPathConfig()) -> Loop:
    """A wobbly ellipse in free space keeping the largest clearance from ``config.clearance`` down
    to ``config.min_clearance`` (steps of 5 cm) that still leaves radii of ``config.min_radius``.
    Deterministic given ``rng``; ValueError if none fits."""
    clear, xs, ys = clearance_map(room)
    wobble = (rng.uniform(0.04, 0.1), rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.05), rng.uniform(0, 2 * np.pi))
    start, direction = float(rng.uniform(0, 2 * np.pi)), float(rng.choice([-1.0, 1.0]))
    s = np.linspace(0.0, 1.0, 720, endpoint=False)
    cell = xs[1] - xs[0]
    steps = int(round((config.clearance - config.min_clearance) / 0.05))
    best: Loop | None = None
    j_max, i_max = (int(v) for v in np.unravel_index(int(np.argmax(clear)), clear.shape))
    for threshold in config.clearance - 0.05 * np.arange(steps + 1):
        if clear[j_max, i_max] < threshold:
            continue
        # centre the loop in the free cross through the most open point, then size it
        x0, x1 = _free_interval(clear[j_max], xs, i_max, threshold)
        i = int(np.argmin(np.abs(xs - (x0 + x1) / 2)))
        y0, y1 = _free_interval(clear[:, i], ys, j_max, threshold)
        j = int(np.argmin(np.abs(ys - (y0 + y1) / 2)))
        x0, x1 = _free_interval(clear[j], xs, i, threshold)
        loop = Loop(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array([(x1 - x0) / 2, (y1 - y0) / 2]), wobble, start, direction)
        for _ in range(60):
            xy, _ = loop.positions(s)
            ci = np.clip(np.round((xy[:, 0] - xs[0]) / cell).astype(int), 0, len(xs) - 1)
            cj = np.clip(np.round((xy[:, 1] - ys[0]) / cell).astype(int), 0, len(ys) - 1)
            if np.all(clear[cj, ci] >= threshold):
                break
            loop = Loop(loop.centre, loop.radii * 0.92, wobble, start, direction)
        if np.min(loop.radii) >= config.min_radius:
            return loop
        best = loop
    radii = best.radii.round(2).tolist() if best is not None else [0.0, 0.0]
    raise ValueError(f"free floor space too small for the camera loop (radii {radii} m)")


@dataclass(frozen=True)
class DoorwayLoop:
    """The walking loop of two connected rooms: two half ellipses joined at the doorways of the
    partition on x = 0, crossing it at right angles through the doorway centres ``(0, centre_y +- ry)``;
    ``rx`` (2,) are the half-axes into the x < 0 and the x > 0 room."""

    centre_y: float
    ry: float
    rx: tuple[float, float]
    start: float
    direction: float

    def positions(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """xy positions (N, 2) and loop angles (N,) at loop fractions ``s`` in [0, 1)."""
        theta = self.start + self.direction * 2.0 * np.pi * s
        cos = np.cos(theta)
        rx = np.where(cos < 0, self.rx[0], self.rx[1])
        return np.stack([rx * cos, self.centre_y + self.ry * np.sin(theta)], -1), theta


def plan_doorway_loop(room: Room, rng: np.random.Generator, config: CameraPathConfig = CameraPathConfig()) -> DoorwayLoop:
    """A :class:`DoorwayLoop` through the room's two doorways reaching as far into each room as
    keeps ``config.clearance`` from furniture and walls (``config.min_clearance`` within 1 m of the
    partition, where the doorways are). Deterministic given ``rng``; ValueError if none fits."""
    (_, y0), (_, y1) = sorted(room.doorways, key=lambda d: d[1])
    clear, xs, ys = clearance_map(room)
    cell = xs[1] - xs[0]
    start, direction = float(rng.uniform(0, 2 * np.pi)), float(rng.choice([-1.0, 1.0]))
    centre_y, ry = (y0 + y1) / 2, (y1 - y0) / 2
    theta = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radii = []
    for side in (-1, 1):
        half = theta[np.sign(np.cos(theta)) == side]
        for rx in np.arange(np.floor(room.shell.hi[0] / 0.05) * 0.05, config.min_radius - 1e-9, -0.05):
            x, y = side * np.abs(rx * np.cos(half)), centre_y + ry * np.sin(half)
            c = clear[np.clip(np.round((y - ys[0]) / cell).astype(int), 0, len(ys) - 1), np.clip(np.round((x - xs[0]) / cell).astype(int), 0, len(xs) - 1)]
            needed = np.where(np.abs(x) > 1.0, config.clearance, config.min_clearance)
            if np.all(c >= needed):
                radii.append(float(rx))
                break
        else:
            raise ValueError(f"free floor space too small for the camera loop in the {'west' if side < 0 else 'east'} room")
    return DoorwayLoop(centre_y, ry, (radii[0], radii[1]), start, direction)


def camera_path(loop: Loop | DoorwayLoop, num_frames: int, rng: np.random.Generator, config: CameraPathConfig = CameraPathConfig()) -> np.ndarray:
    """Camera-to-world poses (F, 4, 4) along ``loop``."""
    s = np.arange(num_frames) / num_frames
    xy, theta = loop.positions(s)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=8)
    tau = 2.0 * np.pi * s
    height = rng.uniform(*config.height_mean) + config.bob_amplitude * np.sin(7 * tau + phase[0]) + 0.03 * np.sin(2 * tau + phase[1])
    pitch = rng.uniform(*config.pitch_mean) + config.pitch_swing * np.sin(2 * tau + phase[2]) + 2.5 * np.sin(5 * tau + phase[3])
    yaw = theta + np.deg2rad(config.yaw_swing) * np.sin(3 * tau + phase[4])
    roll = config.roll * np.sin(4 * tau + phase[5]) + 0.8 * np.sin(11 * tau + phase[6])
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    for f in range(num_frames):
        poses[f, :3, :3] = look_rotation(yaw[f], np.deg2rad(pitch[f]), np.deg2rad(roll[f]))
        poses[f, :3, 3] = [xy[f, 0], xy[f, 1], height[f]]
    return poses
