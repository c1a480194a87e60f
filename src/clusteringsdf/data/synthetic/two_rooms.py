"""Two connected rooms for the ``large`` preset: a living/dining room and a bedroom/office side by
side, separated by a partition wall with two doorways, furnished with 40+ things.

World frame as in :mod:`.room` (metres, +z up, floor at z = 0, the whole space centred on x = y = 0).
The canonical plan (before the random mirroring of x and/or y) puts the partition on x = 0 with the
doorways centred on ``(0, +-door_y)``, the living room on the west (x < 0) and the bedroom on the east.

Furniture comes in *groups* packed along the outer walls: the end wall of each room (west, east) over
its whole length, then the north and south walls from just past the end wall's furniture in that
corner to 1 m before the partition (the camera walks through the doorways there). Each group (a dining
table with its chairs, a sofa with armchairs, a desk with a chair and a monitor, a bed with its
nightstands, ...) is built in wall coordinates: ``a`` along the wall from the group's start, ``n``
from the wall into the room, facing ``(fa, fn)`` in the same axes. The living room's end wall always
carries the television, the bedroom's end wall a bed: the room's preferred never-co-visible pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .geometry import RoomShell
from .room import (  # the single room's classes, materials, part builders and layout helpers
    _DARK, _INSTANCE_BRIGHTNESS, _LINEN, _METAL, _VASE, _WOOD_DARK, BAG, BED, CABINET, CHAIR, DOOR, OTHERPROP, REFRIGERATOR,
    SHELVES, SOFA, TABLE, TELEVISION, VOID, WALL, WINDOW, Part, Room, RoomConfig, _bag, _bed, _box, _Builder, _cabinet,
    _chair, _check_layout, _cyl, _flat, _refrigerator, _scaled, _shell_objects, _shelves, _sofa, _table, _television,
)
from .shading import Lighting, Material

PARTITION_THICKNESS = 0.12
DOOR_WIDTH = 1.3
LINTEL_HEIGHT = 2.2
CORNER_ZONE = 1.5  # end-wall groups this close to a corner push the side wall's first group away
PARTITION_MARGIN = 1.0  # side walls end this far from the partition (the camera's way through the doorways)
GAP = 0.15  # least space between two groups
MIN_THINGS = 40


@dataclass
class _Item:
    """One object of a group in wall coordinates (see the module docstring)."""

    name: str
    class_id: int
    parts: list[Part]  # local frame, front = +y
    a: float
    n: float
    z: float = 0.0
    facing: tuple[float, float] = (0.0, 1.0)
    on_floor: bool = True


@dataclass
class _Group:
    """Furniture along a wall: ``width`` along it, ``depth`` into the room, its objects."""

    width: float
    depth: float
    items: list[_Item]


@dataclass(frozen=True)
class _Wall:
    """A straight run of wall (canonical plan): ``origin`` (2,) on the wall line, unit ``along`` and
    ``inward`` (2,), ``length`` in metres."""

    origin: tuple[float, float]
    along: tuple[float, float]
    inward: tuple[float, float]
    length: float

    def place(self, a: float, n: float) -> tuple[float, float]:
        """Canonical xy of wall coordinates (a, n)."""
        return (self.origin[0] + self.along[0] * a + self.inward[0] * n, self.origin[1] + self.along[1] * a + self.inward[1] * n)


class _Furnisher:
    """Draws furniture groups with per-class colours from one random stream."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.drawn: dict[int, int] = {}  # materials drawn per class

    def mat(self, class_id: int, color, pattern: str, **kw) -> Material:
        """Class hue with the brightness of the class's next instance."""
        count = self.drawn.get(class_id, 0)
        self.drawn[class_id] = count + 1
        return Material(_scaled(color, _INSTANCE_BRIGHTNESS[count % len(_INSTANCE_BRIGHTNESS)]), pattern, seed=int(self.rng.integers(1 << 20)), **kw)

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    # ------------------------------------------------------------------------------- groups

    def chair(self, width: float = 0.45, depth: float = 0.45) -> list[Part]:
        color = (0.88, 0.52, 0.12)
        m = self.mat(CHAIR, color, "stripes", scale=0.09, axis=0, color2=_scaled(color, 0.62))
        return _chair(m, width, depth, seat=0.46 if width < 0.6 else 0.42, back=self.u(0.4, 0.5))

    def bag(self) -> list[Part]:
        m = self.mat(BAG, (0.72, 0.12, 0.52), "checker", scale=0.08, color2=(0.52, 0.08, 0.38))
        return _bag(m, self.u(0.32, 0.4), 0.22, self.u(0.26, 0.34))

    def television(self, width: float, base: float) -> list[Part]:
        screen = self.mat(TELEVISION, (0.05, 0.08, 0.16), "blobs", scale=0.12, color2=(0.30, 0.42, 0.60))
        return _television(_DARK, screen, width, base)

    def tv(self) -> _Group:
        length, height = self.u(1.2, 1.6), self.u(0.45, 0.55)
        stand = self.mat(CABINET, (0.22, 0.22, 0.25), "stripes", scale=0.2, axis=2, color2=(0.3, 0.3, 0.34))
        items = [
            _Item("tv_stand", CABINET, _cabinet(stand, _METAL, (length, 0.42, height)), length / 2, 0.03 + 0.21),
            _Item("television", TELEVISION, self.television(self.u(0.9, min(1.2, length - 0.1)), 0.0), length / 2, 0.03 + 0.21, height, on_floor=False),
        ]
        return _Group(length, 0.45, items)

    def lounge(self) -> _Group:
        sofa_w, sofa_d = self.u(1.7, 2.1), 0.9
        sofa = self.mat(SOFA, (0.20, 0.52, 0.32), "checker", scale=0.12, color2=(0.15, 0.40, 0.25))
        cushion = Material(_scaled(sofa.color, 1.15), "checker", scale=0.12, color2=sofa.color2, seed=sofa.seed + 1)
        armchairs = int(self.rng.choice([0, 1, 2], p=[0.15, 0.35, 0.5]))
        a = 0.0
        items: list[_Item] = []
        if armchairs == 2:
            items.append(_Item("armchair", CHAIR, self.chair(0.7, 0.7), a + 0.35, 0.03 + 0.45))
            a += 0.85
        items.append(_Item("sofa", SOFA, _sofa(sofa, cushion, sofa_w, sofa_d), a + sofa_w / 2, 0.03 + sofa_d / 2))
        if self.rng.random() < 0.5:  # on the seat cushion
            items.append(_Item("bag", BAG, self.bag(), a + sofa_w * self.u(0.25, 0.75), 0.03 + sofa_d / 2 + 0.1, 0.45, on_floor=False))
        picture = self.mat(OTHERPROP, (0.12, 0.32, 0.66), "blobs", scale=0.14, color2=(0.96, 0.74, 0.18))
        items.append(_Item("picture", OTHERPROP, _flat(picture, self.u(0.8, 1.1), self.u(0.5, 0.7), thickness=0.03, z0=1.2), a + sofa_w / 2, 0.0, on_floor=False))
        a += sofa_w + 0.15
        if armchairs >= 1:
            items.append(_Item("armchair", CHAIR, self.chair(0.7, 0.7), a + 0.35, 0.03 + 0.45))
            a += 0.85
        if self.rng.random() < 0.6:
            items.append(_Item("bag", BAG, self.bag(), a + 0.2, 0.25))
            a += 0.45
        return _Group(a, 0.95, items)

    def dining(self) -> _Group:
        length, depth = self.u(1.4, 2.0), 0.8
        table = self.mat(TABLE, (0.46, 0.28, 0.14), "planks", scale=0.12, axis=1, axis2=0)
        end = 0.1 + 0.45
        n_table = 0.05 + depth / 2
        items = [_Item("table", TABLE, _table(table, length, depth, 0.75), end + length / 2, n_table)]
        front = 2 if length < 1.6 else 3
        for i in range(front):
            a = end + length * (i + 0.5) / front
            items.append(_Item("chair", CHAIR, self.chair(), a, 0.05 + depth + 0.1 + 0.225, facing=(0.0, -1.0)))
        items.append(_Item("chair", CHAIR, self.chair(), 0.225, n_table, facing=(1.0, 0.0)))
        items.append(_Item("chair", CHAIR, self.chair(), end + length + 0.1 + 0.225, n_table, facing=(-1.0, 0.0)))
        if self.rng.random() < 0.7:
            items.append(_Item("bag", BAG, self.bag(), end + length * self.u(0.6, 0.85), n_table, 0.75, on_floor=False))
        if self.rng.random() < 0.5:
            items.append(_Item("unlabelled_vase", VOID, [_cyl((0, 0), (0.0, 0.24), 0.065, _VASE)], end + length * self.u(0.15, 0.4), n_table, 0.75, on_floor=False))
        window = self.mat(WINDOW, (0.70, 0.85, 0.97), "grid", scale=0.45, axis=1, color2=(0.95, 0.95, 0.95), strength=0.06)
        items.append(_Item("window", WINDOW, _flat(window, min(length, 1.4), 1.15, thickness=0.04, z0=0.95), end + length / 2, 0.0, on_floor=False))
        return _Group(length + 2 * end, 0.05 + depth + 0.1 + 0.45, items)

    def desk(self) -> _Group:
        length, depth = self.u(1.0, 1.3), 0.6
        desk = self.mat(TABLE, (0.62, 0.55, 0.45), "noise", scale=0.15, strength=0.06)
        items = [
            _Item("desk", TABLE, _table(desk, length, depth, 0.74), length / 2, 0.03 + depth / 2),
            _Item("monitor", TELEVISION, self.television(self.u(0.5, 0.65), 0.0), length / 2 + self.u(-0.15, 0.15), 0.03 + 0.15, 0.74, on_floor=False),
            _Item("chair", CHAIR, self.chair(), length / 2 + self.u(-0.15, 0.15), 0.03 + depth + 0.05 + 0.225, facing=(0.0, -1.0)),
        ]
        if self.rng.random() < 0.4:
            side = -1 if self.rng.random() < 0.5 else 1
            items.append(_Item("bag", BAG, self.bag(), length / 2 + side * (length / 2 - 0.22), 0.03 + 0.3, 0.74, on_floor=False))
        return _Group(length, 0.03 + depth + 0.05 + 0.45, items)

    def bed(self) -> _Group:
        width, length = self.u(0.95, 1.6), self.u(1.95, 2.1)
        duvet = self.mat(BED, (0.28, 0.34, 0.78), "stripes", scale=0.22, axis=0, color2=(0.45, 0.52, 0.88))
        nightstand = self.mat(CABINET, (0.33, 0.50, 0.64), "stripes", scale=0.18, axis=2, color2=(0.26, 0.40, 0.52))
        items = [_Item("nightstand", CABINET, _cabinet(nightstand, _METAL, (0.45, 0.42, 0.55)), 0.225, 0.03 + 0.21)]
        items.append(_Item("bed", BED, _bed(duvet, _WOOD_DARK, _LINEN, width=width, length=length), 0.5 + width / 2, 0.03 + length / 2))
        if self.rng.random() < 0.5:
            items.append(_Item("bag", BAG, self.bag(), 0.5 + width * self.u(0.3, 0.7), 0.03 + length * 0.7, 0.61, on_floor=False))
        picture = self.mat(OTHERPROP, (0.55, 0.20, 0.30), "blobs", scale=0.14, color2=(0.95, 0.85, 0.55))
        items.append(_Item("picture", OTHERPROP, _flat(picture, min(width, 1.0), 0.5, thickness=0.03, z0=1.3), 0.5 + width / 2, 0.0, on_floor=False))
        return _Group(0.5 + width + 0.05, 0.03 + length, items)

    def kitchen(self) -> _Group:
        fridges = 2 if self.rng.random() < 0.35 else 1
        counter_len = self.u(0.8, 1.5)
        body = (0.74, 0.78, 0.84)
        items = []
        a = 0.0
        for _ in range(fridges):
            m = self.mat(REFRIGERATOR, body, "stripes", scale=0.08, axis=0, color2=(0.66, 0.70, 0.76))
            items.append(_Item("refrigerator", REFRIGERATOR, _refrigerator(m, _METAL, (0.72, 0.68, self.u(1.7, 1.85))), a + 0.36, 0.03 + 0.34))
            a += 0.77
        counter = self.mat(CABINET, (0.85, 0.83, 0.78), "noise", scale=0.1, strength=0.05)
        items.append(_Item("counter", CABINET, _cabinet(counter, _METAL, (counter_len, 0.6, 0.9)), a + counter_len / 2, 0.03 + 0.3))
        if self.rng.random() < 0.5:
            items.append(_Item("kitchen_tv", TELEVISION, self.television(0.5, 0.0), a + counter_len * self.u(0.3, 0.7), 0.03 + 0.2, 0.9, on_floor=False))
        else:
            items.append(_Item("bag", BAG, self.bag(), a + counter_len * self.u(0.3, 0.7), 0.03 + 0.3, 0.9, on_floor=False))
        return _Group(a + counter_len, 0.72, items)

    def shelves(self) -> _Group:
        width, height = self.u(0.7, 0.9), self.u(1.6, 1.9)
        books = Material((0.72, 0.20, 0.18), "stripes", scale=0.07, axis=0, color2=(0.18, 0.30, 0.62), seed=int(self.rng.integers(1 << 20)))
        wood = self.mat(SHELVES, (0.74, 0.60, 0.40), "noise", scale=0.1, strength=0.06)
        items = [_Item("shelves", SHELVES, _shelves(wood, books, (width, 0.35, height)), width / 2, 0.03 + 0.175)]
        items.append(_Item("bag", BAG, self.bag(), width + 0.25, 0.2))
        if self.rng.random() < 0.6:
            items.append(_Item("bag", BAG, self.bag(), width / 2, 0.03 + 0.175, height, on_floor=False))
        return _Group(width + 0.45, 0.4, items)

    def bags(self) -> _Group:
        count = int(self.rng.integers(2, 4))
        items = [_Item("bag", BAG, self.bag(), 0.22 + 0.45 * i, 0.2, facing=(self.u(-0.3, 0.3), 1.0)) for i in range(count)]
        return _Group(0.45 * count, 0.35, items)

    def door(self) -> _Group:
        door = self.mat(DOOR, (0.50, 0.32, 0.18), "planks", scale=0.15, axis=0, axis2=2, strength=0.08)
        return _Group(1.1, 0.0, [_Item("door", DOOR, _flat(door, 0.9, 2.05, thickness=0.04, z0=0.0), 0.55, 0.0, on_floor=False)])


# what the walls may carry, with weights (each room's end wall also gets its required group)
_END_WALL = {"kitchen": 1.0, "lounge": 2.0, "desk": 2.5, "shelves": 1.0, "bags": 1.5, "bed": 0.7}
_SIDE_WALL = {"dining": 2.5, "lounge": 1.0, "desk": 2.5, "kitchen": 0.7, "shelves": 0.8, "bags": 1.5}


def _pack(
    length: float, groups: list[_Group], draw: Callable[[str], _Group], weights: dict[str, float], *, rng: np.random.Generator
) -> list[tuple[float, _Group]]:
    """Start offsets along a wall of ``length`` for ``groups`` plus random draws while any fits (a
    kind whose draw did not fit is not drawn again), in random order with the spare length spread
    randomly over the gaps."""
    groups = list(groups)
    used = sum(g.width + GAP for g in groups)
    if used - GAP > length:
        raise ValueError(f"the required furniture does not fit on a {length:.2f} m wall")
    kinds = dict(weights)
    while kinds:
        names, p = list(kinds), np.array(list(kinds.values()))
        kind = str(rng.choice(names, p=p / p.sum()))
        group = draw(kind)
        if used + group.width <= length:
            groups.append(group)
            used += group.width + GAP
        else:
            del kinds[kind]
    order = rng.permutation(len(groups))
    spare = max(length - used + GAP, 0.0)
    gaps = rng.dirichlet(np.ones(len(groups) + 1)) * spare
    placed, a = [], 0.0
    for gap, i in zip(gaps, order):
        a += gap
        placed.append((a, groups[int(i)]))
        a += groups[int(i)].width + GAP
    return placed


def _corner_depth(placed: list[tuple[float, _Group]], length: float, at_start: bool) -> float:
    """How far the groups within ``CORNER_ZONE`` of one end of a wall reach into the room."""
    near = [g.depth for a, g in placed if (a < CORNER_ZONE if at_start else a + g.width > length - CORNER_ZONE)]
    return max(near, default=0.0)


def build_two_rooms(config: RoomConfig, rng: np.random.Generator) -> Room:
    """Lay out the two connected rooms. Deterministic for the state of ``rng``; raises ValueError if
    the sampled furniture does not fit or holds fewer than ``MIN_THINGS`` things (callers draw again)."""
    lx, ly = rng.uniform(*config.size_x), rng.uniform(*config.size_y)
    lz = rng.uniform(*config.height)
    x_half, y_half = lx / 2.0, ly / 2.0
    door_y = float(rng.uniform(1.7, 1.9))
    mirror = (int(rng.choice([-1, 1])), int(rng.choice([-1, 1])))
    b = _Builder(mirror)
    shell_objects, shell_materials = _shell_objects(b, rng)
    furnish = _Furnisher(rng)
    draw = {
        "tv": furnish.tv, "lounge": furnish.lounge, "dining": furnish.dining, "desk": furnish.desk, "bed": furnish.bed,
        "kitchen": furnish.kitchen, "shelves": furnish.shelves, "bags": furnish.bags, "door": furnish.door,
    }

    # the partition: three floor-to-ceiling pieces between the doorways, lintels above them
    t = PARTITION_THICKNESS
    inner, outer = door_y - DOOR_WIDTH / 2, door_y + DOOR_WIDTH / 2
    wall_mat = shell_materials[0]
    pieces = [_box((0, 0, 0.0), (t, 2 * inner, lz), wall_mat)]
    pieces += [_box((0, s * (outer + y_half) / 2, 0.0), (t, y_half - outer, lz), wall_mat) for s in (-1, 1)]
    b.add("wall_partition", WALL, pieces, (0.0, 0.0, 0.0), facing=(0, 1))
    lintels = [_box((0, s * door_y, LINTEL_HEIGHT), (t, DOOR_WIDTH, lz - LINTEL_HEIGHT), wall_mat) for s in (-1, 1)]
    b.add("wall_lintel", WALL, lintels, (0.0, 0.0, 0.0), facing=(0, 1), on_floor=False)

    def put(wall: _Wall, placed: list[tuple[float, _Group]]) -> dict[int, int]:
        """Add the groups' objects; returns id(item) -> object index."""
        index = {}
        for start, group in placed:
            for item in group.items:
                x, y = wall.place(start + item.a, item.n)
                fa, fn = item.facing
                facing = (wall.along[0] * fa + wall.inward[0] * fn, wall.along[1] * fa + wall.inward[1] * fn)
                index[id(item)] = b.add(item.name, item.class_id, item.parts, (x, y, item.z), facing=facing, on_floor=item.on_floor)
        return index

    # end walls first (west from south to north, east from north to south), each with its required group
    west = _Wall((-x_half, -y_half), (0, 1), (1, 0), ly)
    east = _Wall((x_half, y_half), (0, -1), (-1, 0), ly)
    tv, bed = draw["tv"](), draw["bed"]()
    west_groups = _pack(ly, [tv], lambda kind: draw[kind](), _END_WALL, rng=rng)
    east_groups = _pack(ly, [bed], lambda kind: draw[kind](), _END_WALL, rng=rng)
    tv_index = put(west, west_groups)[id(tv.items[1])]
    bed_index = put(east, east_groups)[id(bed.items[1])]
    # side walls from past the end wall's furniture in the corner to PARTITION_MARGIN from the partition
    corner = {
        "south_west": _corner_depth(west_groups, ly, True) + GAP, "north_west": _corner_depth(west_groups, ly, False) + GAP,
        "north_east": _corner_depth(east_groups, ly, True) + GAP, "south_east": _corner_depth(east_groups, ly, False) + GAP,
    }
    sides = [  # north and south wall of the west room, then of the east room; a door on two of them
        (_Wall((-PARTITION_MARGIN, y_half), (-1, 0), (0, -1), x_half - PARTITION_MARGIN - corner["north_west"]), []),
        (_Wall((-x_half + corner["south_west"], -y_half), (1, 0), (0, 1), x_half - PARTITION_MARGIN - corner["south_west"]), ["door"]),
        (_Wall((x_half - corner["north_east"], y_half), (-1, 0), (0, -1), x_half - PARTITION_MARGIN - corner["north_east"]), ["door"]),
        (_Wall((PARTITION_MARGIN, -y_half), (1, 0), (0, 1), x_half - PARTITION_MARGIN - corner["south_east"]), []),
    ]
    for wall, required in sides:
        put(wall, _pack(wall.length, [draw[k]() for k in required], lambda kind: draw[kind](), _SIDE_WALL, rng=rng))
    for side in (-1, 1):  # a rug in the middle of each room
        rug = Material((0.62, 0.16, 0.20) if side < 0 else (0.20, 0.30, 0.55), "stripes", scale=0.3, axis=0, color2=(0.86, 0.78, 0.62), seed=60 + side)
        b.add("rug", OTHERPROP, [_box((0, 0, 0.0), (2.2, 1.5, 0.012), rug)], (side * x_half / 2 + rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 0.0), facing=(0, 1), on_floor=False)

    objects = b.objects
    _check_layout(objects, x_half, y_half)
    things = sum(o.is_thing for o in objects)
    if things < MIN_THINGS:
        raise ValueError(f"only {things} things fit (at least {MIN_THINGS} wanted)")
    shell = RoomShell(np.array([-x_half, -y_half, 0.0]), np.array([x_half, y_half, lz]))
    lights = [(side * x_half / 2, 0.0, lz - 0.45) for side in (-1, 1)]  # one under each room's ceiling
    return Room(
        size=np.array([lx, ly, lz]),
        shell=shell,
        objects=objects,
        shell_objects=shell_objects,
        shell_materials=shell_materials,
        lighting=Lighting(point_position=lights[0], extra_points=tuple(lights[1:])),
        preferred_pair=(tv_index, bed_index),
        mirror=mirror,
        doorways=((0.0, -door_y), (0.0, door_y)),  # symmetric: the same after mirroring
    )
