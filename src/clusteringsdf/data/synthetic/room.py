"""Procedural indoor rooms built from oriented boxes and vertical cylinders.

World frame: metres, **+z up**, floor at z = 0, the room spans ``[-Lx/2, Lx/2] x [-Ly/2, Ly/2] x
[0, Lz]``. Walls are named by the side they bound: west (x = -Lx/2), east, south (y = -Ly/2), north.

A room holds stuff (floor 2, four walls 1, ceiling 13, tables 7, cabinets 3, shelves 11, a window 9, a
door 8, a rug and a picture 21), THINGS made of a few primitives each (chairs 5, a sofa 6, a bed 4, a
television 15 on a stand, a refrigerator 14, bags 20) and one small unlabelled vase (class 0 = void).
The layout is drawn from a canonical plan (TV wall west, bed wall east, dining set north, sofa south)
with random sizes, offsets, counts and a random mirroring of x and/or y, so opposite walls carry
objects that a camera walking in the middle never sees together.

Object frames: every builder works in a local frame with the origin at the centre of the footprint on
the floor, width along local x, depth along local y, the *front* (the side one sits on / looks at)
facing local +y, and z up; :func:`_place` rotates it about z and moves it into the room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..classes import REDUCED_SCANNET_CLASSES, THING_CLASSES
from .geometry import Box, Cylinder, Primitive, RoomShell, yaw_matrix
from .shading import Lighting, Material

VOID, WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
SHELVES, CEILING, REFRIGERATOR, TELEVISION, BAG, OTHERPROP = 11, 13, 14, 15, 20, 21

# brightness factors of successive instances of one class (same hue, different brightness)
_INSTANCE_BRIGHTNESS = (1.0, 0.7, 1.22, 0.84, 1.1, 0.6)

# materials without a random seed, shared by every room
_DARK = Material((0.07, 0.07, 0.08), "noise", scale=0.1, strength=0.05, seed=40)
_METAL = Material((0.30, 0.30, 0.32), "noise", scale=0.1, strength=0.05, seed=41)
_LINEN = Material((0.93, 0.92, 0.87), "noise", scale=0.12, strength=0.05, seed=42)
_WOOD_DARK = Material((0.40, 0.26, 0.16), "planks", scale=0.12, strength=0.08, axis=0, axis2=1, seed=43)
_VASE = Material((0.96, 0.82, 0.10), "stripes", scale=0.07, axis=2, color2=(0.90, 0.38, 0.10), seed=50)


@dataclass
class Part:
    """One primitive of an object with its material (world coordinates once placed)."""

    shape: Primitive
    material: Material


@dataclass
class SceneObject:
    """An object of the scene.

    Attributes:
        object_id: unique id >= 1 over all objects, stuff included (``object`` in ``gt_mesh.ply``).
        name: readable unique name, e.g. ``chair_2``.
        class_id: reduced ScanNet class (0 = void).
        instance_id: GT instance id 1..K for thing objects, 0 for stuff and void.
        parts: primitives in world coordinates (empty for the room shell's faces).
        frame_origin, frame_rotation: object frame in which textures are evaluated (local = R^T (p - o)).
        on_floor: a free-standing floor object (used for footprint overlap and camera clearance).
    """

    object_id: int
    name: str
    class_id: int
    instance_id: int
    parts: list[Part]
    frame_origin: np.ndarray
    frame_rotation: np.ndarray
    on_floor: bool = True

    @property
    def is_thing(self) -> bool:
        return self.class_id in THING_CLASSES

    @property
    def class_name(self) -> str:
        return REDUCED_SCANNET_CLASSES[self.class_id]

    def footprint(self) -> np.ndarray:
        """Axis-aligned xy bounds ``[xmin, ymin, xmax, ymax]`` of all parts."""
        corners = np.concatenate([part.shape.corners() for part in self.parts])
        return np.concatenate([corners[:, :2].min(0), corners[:, :2].max(0)])


@dataclass
class Room:
    """A laid-out room: shell, objects (index i has ``object_id == i + 1``), lighting and metadata.

    ``shell_objects[f]`` is the index into ``objects`` of shell face ``f`` (0 west wall, 1 east wall,
    2 south wall, 3 north wall, 4 floor, 5 ceiling) and ``shell_materials[f]`` its material.
    ``preferred_pair`` names two thing objects (indices) of different classes placed at opposite
    walls: the first candidate for the never-co-visible pair. ``mirror`` holds the signs (+-1) applied
    to the canonical plan's x and y. ``doorways`` holds the xy centres of the doorways of an interior
    partition on x = 0 (two connected rooms, :mod:`.two_rooms`); empty for a single room.
    """

    size: np.ndarray
    shell: RoomShell
    objects: list[SceneObject]
    shell_objects: tuple[int, ...]
    shell_materials: tuple[Material, ...]
    lighting: Lighting
    preferred_pair: tuple[int, int]
    mirror: tuple[int, int] = (1, 1)
    doorways: tuple[tuple[float, float], ...] = ()

    def primitives(self) -> tuple[list[Primitive], list[int], list[Material]]:
        """All object primitives with their object index and material, in a fixed order."""
        shapes, owners, materials = [], [], []
        for index, obj in enumerate(self.objects):
            for part in obj.parts:
                shapes.append(part.shape)
                owners.append(index)
                materials.append(part.material)
        return shapes, owners, materials


@dataclass(frozen=True)
class RoomConfig:
    """Size ranges and contents of a preset's rooms."""

    size_x: tuple[float, float]
    size_y: tuple[float, float]
    height: tuple[float, float]
    full: bool  # the full furniture set (``room``) or the reduced one (``tiny``)
    two_rooms: bool = False  # two connected rooms furnished by :mod:`.two_rooms` (``large``)


# --------------------------------------------------------------------------------- small helpers


def _box(base: tuple[float, float, float], size: tuple[float, float, float], material: Material) -> Part:
    """Axis-aligned box (in the local frame) whose bottom face is centred on ``base`` = (x, y, z0),
    with full sizes ``size`` = (sx, sy, sz)."""
    cx, cy, z0 = base
    sx, sy, sz = size
    return Part(Box(np.array([cx, cy, z0 + sz / 2.0]), np.eye(3), np.array([sx, sy, sz]) / 2.0), material)


def _cyl(center: tuple[float, float], z: tuple[float, float], radius: float, material: Material) -> Part:
    """Vertical cylinder around ``center`` = (x, y) from height ``z[0]`` to ``z[1]``."""
    return Part(Cylinder(np.array([center[0], center[1]]), float(z[0]), float(z[1]), float(radius)), material)


def _place(parts: list[Part], yaw: float, origin: np.ndarray) -> list[Part]:
    rotation = yaw_matrix(yaw)
    placed = []
    for part in parts:
        shape = part.shape
        if isinstance(shape, Box):
            new: Primitive = Box(rotation @ shape.center + origin, rotation @ shape.rotation, shape.half.copy())
        else:
            xy = rotation[:2, :2] @ shape.center_xy + origin[:2]
            new = Cylinder(xy, shape.z0 + origin[2], shape.z1 + origin[2], shape.radius)
        placed.append(Part(new, part.material))
    return placed


def _scaled(color: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return tuple(float(np.clip(c * factor, 0.0, 1.0)) for c in color)  # type: ignore[return-value]


# ------------------------------------------------------------------------------ object builders
# Each returns parts in the local frame (front = +y, origin on the floor at the footprint centre).


def _chair(m: Material, width: float, depth: float, *, seat: float, back: float) -> list[Part]:
    legs = [
        _cyl((sx * (width / 2 - 0.04), sy * (depth / 2 - 0.04)), (0.0, seat - 0.05), 0.022, m)
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    return [_box((0, 0, seat - 0.05), (width, depth, 0.05), m), _box((0, -depth / 2 + 0.025, seat), (width, 0.05, back), m), *legs]


def _sofa(m: Material, cushion: Material, width: float, depth: float) -> list[Part]:
    feet = [_cyl((sx * (width / 2 - 0.08), sy * (depth / 2 - 0.08)), (0.0, 0.08), 0.03, cushion) for sx in (-1, 1) for sy in (-1, 1)]
    return [
        _box((0, 0, 0.08), (width, depth, 0.25), m),
        _box((0, 0.06, 0.33), (width - 0.36, depth - 0.25, 0.12), cushion),
        _box((0, -depth / 2 + 0.11, 0.33), (width, 0.22, 0.5), m),
        _box((-(width / 2 - 0.09), 0.0, 0.33), (0.18, depth, 0.25), m),
        _box((width / 2 - 0.09, 0.0, 0.33), (0.18, depth, 0.25), m),
        *feet,
    ]


def _bed(duvet: Material, wood: Material, linen: Material, *, width: float, length: float) -> list[Part]:
    return [
        _box((0, 0, 0.0), (width, length, 0.35), wood),
        _box((0, 0.02, 0.35), (width - 0.06, length - 0.1, 0.2), linen),
        _box((0, -length / 2 + 0.04, 0.0), (width, 0.08, 1.0), wood),
        _box((-width / 4, -length / 2 + 0.3, 0.55), (width / 2 - 0.12, 0.36, 0.12), linen),
        _box((width / 4, -length / 2 + 0.3, 0.55), (width / 2 - 0.12, 0.36, 0.12), linen),
        _box((0, 0.27, 0.55), (width - 0.02, length - 0.62, 0.06), duvet),
    ]


def _television(frame: Material, screen: Material, width: float, base: float) -> list[Part]:
    height = 0.58 * width
    return [
        _box((0, 0, base), (0.32, 0.22, 0.02), frame),
        _box((0, -0.02, base + 0.02), (0.07, 0.04, 0.09), frame),
        _box((0, -0.02, base + 0.1), (width, 0.05, height), screen),
    ]


def _refrigerator(body: Material, handle: Material, size: tuple[float, float, float]) -> list[Part]:
    """Body of ``size`` = (width, depth, height) with a handle and a door gap on its front."""
    width, depth, height = size
    return [
        _box((0, 0, 0.0), (width, depth, height), body),
        _box((width / 2 - 0.09, depth / 2 + 0.02, 0.45 * height), (0.03, 0.04, 0.4), handle),
        _box((0, depth / 2 + 0.003, 0.62 * height), (width - 0.02, 0.006, 0.015), handle),
    ]


def _bag(m: Material, width: float, depth: float, height: float) -> list[Part]:
    return [
        _box((0, 0, 0.0), (width, depth, height), m),
        _box((-0.08, 0, height), (0.025, 0.025, 0.12), m),
        _box((0.08, 0, height), (0.025, 0.025, 0.12), m),
        _box((0, 0, height + 0.12), (0.185, 0.025, 0.025), m),
    ]


def _table(m: Material, length: float, depth: float, height: float) -> list[Part]:
    legs = [_cyl((sx * (length / 2 - 0.07), sy * (depth / 2 - 0.07)), (0.0, height - 0.04), 0.03, m) for sx in (-1, 1) for sy in (-1, 1)]
    return [_box((0, 0, height - 0.04), (length, depth, 0.04), m), *legs]


def _cabinet(m: Material, handle: Material, size: tuple[float, float, float]) -> list[Part]:
    """Body of ``size`` = (width, depth, height) with two handles on its front."""
    width, depth, height = size
    return [
        _box((0, 0, 0.0), (width, depth, height), m),
        _box((-0.1, depth / 2 + 0.012, height * 0.7), (0.1, 0.025, 0.025), handle),
        _box((0.1, depth / 2 + 0.012, height * 0.7), (0.1, 0.025, 0.025), handle),
    ]


def _shelves(wood: Material, books: Material, size: tuple[float, float, float]) -> list[Part]:
    """Open shelves of ``size`` = (width, depth, height): sides, back, five boards, four rows of books."""
    width, depth, height = size
    t = 0.025
    parts = [
        _box((-(width / 2 - t / 2), 0, 0.0), (t, depth, height), wood),
        _box((width / 2 - t / 2, 0, 0.0), (t, depth, height), wood),
        _box((0, -depth / 2 + 0.01, 0.0), (width, 0.02, height), wood),
    ]
    levels = 4
    for i in range(levels + 1):
        z = i * (height - t) / levels
        parts.append(_box((0, 0, z), (width - 2 * t, depth, t), wood))
        if i < levels:
            book_h = 0.6 * (height - t) / levels
            parts.append(_box((-0.05 * (i % 2), -0.02, z + t), (width * 0.7, depth - 0.08, book_h), books))
    return parts


def _flat(m: Material, width: float, height: float, *, thickness: float, z0: float) -> list[Part]:
    """A thin wall-mounted panel (door, window, picture) in front of the wall plane y = 0."""
    return [_box((0, thickness / 2, z0), (width, thickness, height), m)]


# ------------------------------------------------------------------------------------- layout


class _Builder:
    """Collects objects, mapping canonical positions through the room's mirroring."""

    def __init__(self, mirror: tuple[int, int]) -> None:
        self.mirror = mirror
        self.objects: list[SceneObject] = []
        self.class_counts: dict[int, int] = {}
        self.thing_count = 0

    def brightness(self, class_id: int) -> float:
        return _INSTANCE_BRIGHTNESS[self.class_counts.get(class_id, 0) % len(_INSTANCE_BRIGHTNESS)]

    def add(
        self,
        name: str,
        class_id: int,
        parts: list[Part],
        position: tuple[float, float, float],
        *,
        facing: tuple[float, float],
        on_floor: bool = True,
        optional: bool = False,
    ) -> int | None:
        """Place local ``parts`` at canonical ``position`` facing canonical ``facing``; returns the index.

        An ``optional`` floor object that would overlap another one is skipped (returns None).
        """
        sx, sy = self.mirror
        origin = np.array([sx * position[0], sy * position[1], position[2]])
        yaw = float(np.arctan2(-sx * facing[0], sy * facing[1]))
        placed = _place(parts, yaw, origin)
        count = self.class_counts.get(class_id, 0)
        same_name = sum(o.name.rsplit("_", 1)[0] == name for o in self.objects)
        is_thing = class_id in THING_CLASSES
        obj = SceneObject(
            object_id=len(self.objects) + 1,
            name=f"{name}_{same_name + 1}",
            class_id=class_id,
            instance_id=self.thing_count + 1 if is_thing else 0,
            parts=placed,
            frame_origin=origin,
            frame_rotation=yaw_matrix(yaw),
            on_floor=on_floor,
        )
        if optional and on_floor and any(_overlap(obj, other) for other in self.objects if other.on_floor):
            return None
        self.objects.append(obj)
        self.class_counts[class_id] = count + 1
        if is_thing:
            self.thing_count += 1
        return len(self.objects) - 1


def _overlap(a: SceneObject, b: SceneObject, slack: float = 0.02) -> bool:
    fa, fb = a.footprint(), b.footprint()
    return bool(fa[0] < fb[2] - slack and fb[0] < fa[2] - slack and fa[1] < fb[3] - slack and fb[1] < fa[3] - slack)


def _check_layout(objects: list[SceneObject], x_half: float, y_half: float) -> None:
    """Every floor object inside the box |x| <= x_half, |y| <= y_half and overlapping no other;
    ValueError naming the first that is not."""
    floor_objects = [o for o in objects if o.on_floor]
    for i, a in enumerate(floor_objects):
        fp = a.footprint()
        if fp[0] < -x_half - 1e-6 or fp[2] > x_half + 1e-6 or fp[1] < -y_half - 1e-6 or fp[3] > y_half + 1e-6:
            raise ValueError(f"{a.name} does not fit in the room")
        for other in floor_objects[i + 1 :]:
            if _overlap(a, other):
                raise ValueError(f"{a.name} overlaps {other.name}")


def _shell_objects(builder: _Builder, rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[Material, ...]]:
    """Objects and materials of the 6 shell faces (west, east, south, north walls, floor, ceiling)."""
    wall_color = tuple(rng.uniform([0.74, 0.70, 0.62], [0.86, 0.82, 0.74]))
    indices, materials = [], []
    for face, (name, class_id) in enumerate(
        [("wall_west", WALL), ("wall_east", WALL), ("wall_south", WALL), ("wall_north", WALL), ("floor", FLOOR), ("ceiling", CEILING)]
    ):
        obj = SceneObject(
            object_id=len(builder.objects) + 1,
            name=name,
            class_id=class_id,
            instance_id=0,
            parts=[],
            frame_origin=np.zeros(3),
            frame_rotation=np.eye(3),
            on_floor=False,
        )
        builder.objects.append(obj)
        builder.class_counts[class_id] = builder.class_counts.get(class_id, 0) + 1
        indices.append(len(builder.objects) - 1)
        if class_id == WALL:
            tint = (1.0, 0.96, 1.03, 0.93)[face]
            materials.append(Material(_scaled(wall_color, tint), "noise", scale=0.3, strength=0.045, seed=10 + face))
        elif class_id == FLOOR:
            materials.append(Material((0.58, 0.40, 0.24), "planks", scale=0.16, strength=0.09, axis=1, axis2=0, seed=20))
        else:
            materials.append(Material((0.93, 0.93, 0.91), "noise", scale=0.35, strength=0.03, seed=30))
    return tuple(indices), tuple(materials)


@dataclass
class _RoomDraw:
    """What the wall furnishers of :func:`build_room` share: the preset's room settings, the random
    stream, the object builder and the room's half extents in metres."""

    config: RoomConfig
    rng: np.random.Generator
    builder: _Builder
    x_half: float
    y_half: float

    def mat(self, class_id: int, color, pattern: str, **kw) -> Material:
        """Class hue with the brightness of the class's next instance and a random pattern seed."""
        return Material(_scaled(color, self.builder.brightness(class_id)), pattern, seed=int(self.rng.integers(1 << 20)), **kw)


def _furnish_west(d: _RoomDraw) -> int | None:
    """West wall: a TV on a stand and, in the full room, a door and a refrigerator. Returns the TV's index."""
    b, rng, config, mat, x_half, y_half = d.builder, d.rng, d.config, d.mat, d.x_half, d.y_half
    stand_len = rng.uniform(1.2, 1.5) if config.full else rng.uniform(0.9, 1.1)
    stand_depth, stand_h = 0.42, rng.uniform(0.45, 0.55)
    y_tv = rng.uniform(-0.2, 0.3) if config.full else rng.uniform(-0.25, 0.05)
    wx = -x_half + 0.03 + stand_depth / 2
    b.add("tv_stand", CABINET, _cabinet(mat(CABINET, (0.22, 0.22, 0.25), "stripes", scale=0.2, axis=2, color2=(0.3, 0.3, 0.34)), _METAL, (stand_len, stand_depth, stand_h)), (wx, y_tv, 0.0), facing=(1, 0))
    tv_width = rng.uniform(0.9, 1.15) if config.full else rng.uniform(0.75, 0.9)
    screen = mat(TELEVISION, (0.05, 0.08, 0.16), "blobs", scale=0.12, color2=(0.30, 0.42, 0.60))
    tv = b.add("television", TELEVISION, _television(_DARK, screen, tv_width, 0.0), (wx, y_tv, stand_h), facing=(1, 0), on_floor=False)
    if config.full:
        door_w = 0.9
        b.add("door", DOOR, _flat(mat(DOOR, (0.50, 0.32, 0.18), "planks", scale=0.15, axis=0, axis2=2, strength=0.08), door_w, 2.05, thickness=0.04, z0=0.0), (-x_half, -y_half + 0.3 + door_w / 2, 0.0), facing=(1, 0), on_floor=False)
        fw, fd, fh = 0.72, 0.68, rng.uniform(1.7, 1.85)
        fridge_mat = mat(REFRIGERATOR, (0.74, 0.78, 0.84), "stripes", scale=0.08, axis=0, color2=(0.66, 0.70, 0.76))
        b.add("refrigerator", REFRIGERATOR, _refrigerator(fridge_mat, _METAL, (fw, fd, fh)), (-x_half + 0.03 + fd / 2, y_half - 0.03 - fw / 2, 0.0), facing=(1, 0))
    return tv


def _furnish_east(d: _RoomDraw) -> int | None:
    """East wall: a bed with a nightstand and maybe a bag (full room) or a sofa. Returns the bed's
    or sofa's index."""
    b, rng, mat, x_half = d.builder, d.rng, d.mat, d.x_half
    if d.config.full:
        bed_w, bed_l = rng.uniform(1.4, 1.6), rng.uniform(1.95, 2.1)
        yb = rng.uniform(-0.5, 0.0)
        duvet = mat(BED, (0.28, 0.34, 0.78), "stripes", scale=0.22, axis=0, color2=(0.45, 0.52, 0.88))
        far = b.add("bed", BED, _bed(duvet, _WOOD_DARK, _LINEN, width=bed_w, length=bed_l), (x_half - 0.03 - bed_w / 2, yb, 0.0), facing=(0, -1))
        ns = mat(CABINET, (0.33, 0.50, 0.64), "stripes", scale=0.18, axis=2, color2=(0.26, 0.40, 0.52))
        b.add("nightstand", CABINET, _cabinet(ns, _METAL, (0.45, 0.42, 0.55)), (x_half - 0.03 - 0.21, yb + bed_l / 2 + 0.05 + 0.23, 0.0), facing=(-1, 0))
        bag_mat = mat(BAG, (0.72, 0.12, 0.52), "checker", scale=0.08, color2=(0.52, 0.08, 0.38))
        if rng.random() < 0.75:
            b.add("bag", BAG, _bag(bag_mat, 0.38, 0.22, 0.3), (x_half - 0.35, yb - bed_l / 2 - 0.32, 0.0), facing=(-1, 0), optional=True)
    else:
        sofa_w = rng.uniform(1.4, 1.6)
        sofa_mat = mat(SOFA, (0.20, 0.52, 0.32), "checker", scale=0.12, color2=(0.15, 0.40, 0.25))
        far = b.add("sofa", SOFA, _sofa(sofa_mat, sofa_mat, sofa_w, 0.85), (x_half - 0.03 - 0.425, rng.uniform(-0.3, 0.1), 0.0), facing=(-1, 0))
    return far


def _add_chair(d: _RoomDraw, position: tuple[float, float, float], facing: tuple[float, float], optional: bool = False) -> None:
    """A 0.45 m dining chair at canonical ``position`` facing canonical ``facing``."""
    color = (0.88, 0.52, 0.12)
    m = d.mat(CHAIR, color, "stripes", scale=0.09, axis=0, color2=_scaled(color, 0.62 * d.builder.brightness(CHAIR)))
    d.builder.add("chair", CHAIR, _chair(m, 0.45, 0.45, seat=0.46, back=d.rng.uniform(0.4, 0.5)), position, facing=facing, optional=optional)


def _furnish_north(d: _RoomDraw) -> None:
    """North wall: a dining table with two to four chairs, a window above it and a vase on it."""
    b, rng, config, mat, y_half = d.builder, d.rng, d.config, d.mat, d.y_half
    tl = rng.uniform(1.2, 1.45) if config.full else rng.uniform(0.9, 1.0)
    td = rng.uniform(0.75, 0.85) if config.full else 0.65
    xt = rng.uniform(-0.5, 0.2) if config.full else rng.uniform(-0.45, -0.2)
    yt = y_half - 0.05 - td / 2
    b.add("table", TABLE, _table(mat(TABLE, (0.46, 0.28, 0.14), "planks", scale=0.12, axis=1, axis2=0), tl, td, 0.75), (xt, yt, 0.0), facing=(0, -1))
    cd = 0.45  # chair depth
    for dx in (-tl / 4, tl / 4):
        _add_chair(d, (xt + dx, yt - td / 2 - 0.1 - cd / 2, 0.0), (0, 1))
    if config.full:
        _add_chair(d, (xt - tl / 2 - 0.1 - cd / 2, yt, 0.0), (1, 0))
        if rng.random() < 0.6:
            _add_chair(d, (xt + tl / 2 + 0.1 + cd / 2, yt, 0.0), (-1, 0), optional=True)
    win_w = rng.uniform(1.0, 1.4) if config.full else 0.9
    b.add("window", WINDOW, _flat(mat(WINDOW, (0.70, 0.85, 0.97), "grid", scale=0.45, axis=1, color2=(0.95, 0.95, 0.95), strength=0.06), win_w, 1.15, thickness=0.04, z0=0.95), (xt + rng.uniform(-0.1, 0.1), y_half, 0.0), facing=(0, -1), on_floor=False)
    vase_parts = [_cyl((0, 0), (0.0, 0.24), 0.065, _VASE)]
    b.add("unlabelled_vase", VOID, vase_parts, (xt + rng.uniform(-0.25, 0.25) * tl, yt + rng.uniform(-0.1, 0.05), 0.75), facing=(0, -1), on_floor=False)


def _furnish_south(d: _RoomDraw) -> None:
    """South wall: a picture and, in the full room, a sofa, shelves, maybe a bag and a rug."""
    b, rng, mat, x_half, y_half = d.builder, d.rng, d.mat, d.x_half, d.y_half
    picture = mat(OTHERPROP, (0.12, 0.32, 0.66), "blobs", scale=0.14, color2=(0.96, 0.74, 0.18))
    if not d.config.full:
        b.add("picture", OTHERPROP, _flat(picture, 0.8, 0.55, thickness=0.03, z0=1.15), (rng.uniform(-0.4, 0.4), -y_half, 0.0), facing=(0, 1), on_floor=False)
        return
    sofa_w, sofa_d = rng.uniform(1.8, 2.1), 0.9
    xs = -x_half + 1.35 + sofa_w / 2 + rng.uniform(0.0, 0.3)
    sofa_mat = mat(SOFA, (0.20, 0.52, 0.32), "checker", scale=0.12, color2=(0.15, 0.40, 0.25))
    cushion = Material(_scaled(sofa_mat.color, 1.15), "checker", scale=0.12, color2=sofa_mat.color2, seed=sofa_mat.seed + 1)
    b.add("sofa", SOFA, _sofa(sofa_mat, cushion, sofa_w, sofa_d), (xs, -y_half + 0.03 + sofa_d / 2, 0.0), facing=(0, 1))
    b.add("picture", OTHERPROP, _flat(picture, rng.uniform(0.8, 1.1), rng.uniform(0.5, 0.7), thickness=0.03, z0=1.2), (xs, -y_half, 0.0), facing=(0, 1), on_floor=False)
    sh_w, sh_h = rng.uniform(0.7, 0.9), rng.uniform(1.6, 1.9)
    books = Material((0.72, 0.20, 0.18), "stripes", scale=0.07, axis=0, color2=(0.18, 0.30, 0.62), seed=int(rng.integers(1 << 20)))
    b.add("shelves", SHELVES, _shelves(mat(SHELVES, (0.74, 0.60, 0.40), "noise", scale=0.1, strength=0.06), books, (sh_w, 0.35, sh_h)), (x_half - 0.05 - sh_w / 2, -y_half + 0.03 + 0.175, 0.0), facing=(0, 1))
    if rng.random() < 0.75:
        bag_mat = mat(BAG, (0.72, 0.12, 0.52), "checker", scale=0.08, color2=_scaled((0.52, 0.08, 0.38), b.brightness(BAG)))
        b.add("bag", BAG, _bag(bag_mat, 0.36, 0.22, 0.32), (xs + sofa_w / 2 + 0.32, -y_half + 0.25, 0.0), facing=(0, 1), optional=True)
    rug = Material((0.62, 0.16, 0.20), "stripes", scale=0.3, axis=0, color2=(0.86, 0.78, 0.62), seed=60)
    b.add("rug", OTHERPROP, [_box((0, 0, 0.0), (2.0, 1.4, 0.012), rug)], (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 0.0), facing=(0, 1), on_floor=False)


def build_room(config: RoomConfig, rng: np.random.Generator) -> Room:
    """Lay out one room. Deterministic for the state of ``rng``; raises ValueError if the sampled
    furniture does not fit (callers draw again)."""
    lx, ly = rng.uniform(*config.size_x), rng.uniform(*config.size_y)
    lz = rng.uniform(*config.height)
    x_half, y_half = lx / 2.0, ly / 2.0
    mirror = (int(rng.choice([-1, 1])), int(rng.choice([-1, 1])))
    b = _Builder(mirror)
    shell_objects, shell_materials = _shell_objects(b, rng)
    draw = _RoomDraw(config, rng, b, x_half, y_half)
    tv = _furnish_west(draw)
    far = _furnish_east(draw)
    _furnish_north(draw)
    _furnish_south(draw)

    objects = b.objects
    _check_layout(objects, x_half, y_half)
    assert tv is not None and far is not None
    shell = RoomShell(np.array([-x_half, -y_half, 0.0]), np.array([x_half, y_half, lz]))
    lighting = Lighting(point_position=(0.0, 0.0, lz - 0.45))
    return Room(
        size=np.array([lx, ly, lz]),
        shell=shell,
        objects=objects,
        shell_objects=shell_objects,
        shell_materials=shell_materials,
        lighting=lighting,
        preferred_pair=(tv, far),
        mirror=mirror,
    )


# --------------------------------------------------------------------------------- free space


def clearance_map(room: Room, cell: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal distance (metres) from floor-plan cells to the nearest wall or floor-object footprint.

    Returns the map (ny, nx) and the cell-centre coordinates ``xs`` (nx,), ``ys`` (ny,).
    """
    lo, hi = room.shell.lo, room.shell.hi
    xs = np.arange(lo[0] + cell / 2, hi[0], cell)
    ys = np.arange(lo[1] + cell / 2, hi[1], cell)
    free = np.ones((len(ys) + 2, len(xs) + 2), dtype=bool)
    free[0, :] = free[-1, :] = free[:, 0] = free[:, -1] = False  # the walls
    gx, gy = np.meshgrid(xs, ys)
    for obj in room.objects:
        if not obj.on_floor:
            continue
        for part in obj.parts:
            if isinstance(part.shape, Box):
                rel = np.stack([gx - part.shape.center[0], gy - part.shape.center[1]], -1)
                local = rel @ part.shape.rotation[:2, :2]  # boxes are only rotated about z
                half = part.shape.half[:2]
                inside = (np.abs(local[..., 0]) <= half[0]) & (np.abs(local[..., 1]) <= half[1])
            else:
                inside = np.hypot(gx - part.shape.center_xy[0], gy - part.shape.center_xy[1]) <= part.shape.radius
            free[1:-1, 1:-1] &= ~inside
    distance = ndimage.distance_transform_edt(free)[1:-1, 1:-1] * cell
    return distance, xs, ys
