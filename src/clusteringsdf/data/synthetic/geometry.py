"""Analytic primitives of the synthetic scenes: oriented boxes, vertical cylinders and the room shell.

Every primitive can (a) intersect a bundle of rays exactly, (b) bound its projection on the image
plane (for screen-space culling), (c) report its signed distance to points (to keep cameras out of
objects) and (d) triangulate itself for ``gt_mesh.ply``.

Rays are given as one origin (the camera centre, (3,)) and *unnormalised* world directions
``d = R @ ((u - cx) / fx, (v - cy) / fy, 1)`` (N, 3), so the ray parameter ``t`` of a hit is directly
the z-depth along the optical axis. Misses have ``t = inf``.

World frame: metres, +z up, floor at z = 0, room centred on the origin in x and y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Hits closer than this to the ray origin are ignored (the camera is never inside a primitive).
T_EPS = 1e-6
CYLINDER_SEGMENTS = 48


def index_groups(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of ``labels`` (N,) grouped by value: one index array per distinct value, in increasing
    order of value, each in increasing index order (one empty group when N = 0)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return np.split(order, bounds)


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians (3, 3)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Box:
    """Oriented box: ``center`` (3,), ``rotation`` (3, 3) whose columns are the box axes in world
    coordinates, ``half`` (3,) half extents along those axes."""

    center: np.ndarray
    rotation: np.ndarray
    half: np.ndarray

    def corners(self) -> np.ndarray:
        """The 8 corners (8, 3); corner ``k`` has sign ``+`` on axis ``a`` when bit ``a`` of k is set."""
        bits = (np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1
        local = (bits * 2.0 - 1.0) * self.half
        return local @ self.rotation.T + self.center

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Slab test in the box frame: entry distance ``t`` (N,) of each ray, inf on a miss."""
        o_local = (origin - self.center) @ self.rotation  # R^T (o - c)
        d_local = dirs @ self.rotation
        t_min = np.full(len(dirs), -np.inf)
        t_max = np.full(len(dirs), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis in range(3):
                inv = 1.0 / d_local[:, axis]
                t1 = (-self.half[axis] - o_local[axis]) * inv
                t2 = (self.half[axis] - o_local[axis]) * inv
                np.maximum(t_min, np.minimum(t1, t2), out=t_min)
                np.minimum(t_max, np.maximum(t1, t2), out=t_max)
        hit = (t_min <= t_max) & (t_min > T_EPS)
        return np.where(hit, t_min, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals (N, 3) of the faces the surface ``points`` (N, 3) lie on."""
        q = (points - self.center) @ self.rotation / self.half
        axis = np.argmax(np.abs(q), axis=1)
        sign = np.sign(q[np.arange(len(points)), axis])
        return self.rotation.T[axis] * sign[:, None]

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        q = np.abs((points - self.center) @ self.rotation) - self.half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(np.max(q, axis=-1), 0.0)
        return outside + inside

    def triangles(self) -> tuple[np.ndarray, np.ndarray]:
        """(8, 3) vertices and (12, 3) faces, counter-clockwise seen from outside."""
        faces = []
        for axis in range(3):
            b, c = (axis + 1) % 3, (axis + 2) % 3  # e_b x e_c = e_axis
            for positive in (False, True):
                quad = []
                for sb, sc in ((0, 0), (1, 0), (1, 1), (0, 1)):
                    quad.append((int(positive) << axis) | (sb << b) | (sc << c))
                if not positive:
                    quad = quad[::-1]
                faces += [(quad[0], quad[1], quad[2]), (quad[0], quad[2], quad[3])]
        return self.corners(), np.array(faces, dtype=np.int64)


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder with caps: axis through ``center_xy`` (2,), from ``z0`` to ``z1``, ``radius``."""

    center_xy: np.ndarray
    z0: float
    z1: float
    radius: float

    def corners(self) -> np.ndarray:
        """Corners of the axis-aligned bounding box (8, 3)."""
        bits = (np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1
        lo = np.array([self.center_xy[0] - self.radius, self.center_xy[1] - self.radius, self.z0])
        hi = np.array([self.center_xy[0] + self.radius, self.center_xy[1] + self.radius, self.z1])
        return np.where(bits == 1, hi, lo)

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Nearest hit ``t`` (N,) on the side or the caps, inf on a miss."""
        px, py = origin[0] - self.center_xy[0], origin[1] - self.center_xy[1]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        r2 = self.radius * self.radius
        a = dx * dx + dy * dy
        b = 2.0 * (px * dx + py * dy)
        c = px * px + py * py - r2
        disc = b * b - 4.0 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
            z_side = origin[2] + t_side * dz
            side_ok = (disc >= 0.0) & (a > 1e-18) & (t_side > T_EPS) & (z_side >= self.z0) & (z_side <= self.z1)
            t = np.where(side_ok, t_side, np.inf)
            for zc in (self.z0, self.z1):
                t_cap = (zc - origin[2]) / dz
                x = px + t_cap * dx
                y = py + t_cap * dy
                cap_ok = (t_cap > T_EPS) & (x * x + y * y <= r2) & (t_cap < t)
                t = np.where(cap_ok, t_cap, t)
        return t

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals (N, 3) at surface ``points``: radial on the side, +-z on the caps."""
        rel = points[:, :2] - self.center_xy
        radial = np.linalg.norm(rel, axis=1)
        d_side = np.abs(radial - self.radius)
        d_top = np.abs(points[:, 2] - self.z1)
        d_bottom = np.abs(points[:, 2] - self.z0)
        normals = np.zeros_like(points)
        side = (d_side <= d_top) & (d_side <= d_bottom)
        normals[side, :2] = rel[side] / np.maximum(radial[side], 1e-12)[:, None]
        normals[~side & (d_top <= d_bottom), 2] = 1.0
        normals[~side & (d_top > d_bottom), 2] = -1.0
        return normals

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        radial = np.linalg.norm(points[:, :2] - self.center_xy, axis=-1) - self.radius
        mid, half = (self.z0 + self.z1) / 2.0, (self.z1 - self.z0) / 2.0
        vertical = np.abs(points[:, 2] - mid) - half
        q = np.stack([radial, vertical], axis=-1)
        return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(np.max(q, axis=-1), 0.0)

    def triangles(self, segments: int = CYLINDER_SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (2 * segments + 2, 3) and (4 * segments, 3) outward-facing faces."""
        angles = 2.0 * np.pi * np.arange(segments) / segments
        ring = np.stack([self.center_xy[0] + self.radius * np.cos(angles), self.center_xy[1] + self.radius * np.sin(angles)], -1)
        bottom = np.column_stack([ring, np.full(segments, self.z0)])
        top = np.column_stack([ring, np.full(segments, self.z1)])
        centres = np.array([[*self.center_xy, self.z0], [*self.center_xy, self.z1]])
        vertices = np.concatenate([bottom, top, centres])
        k = np.arange(segments)
        k1 = (k + 1) % segments
        bc, tc = 2 * segments, 2 * segments + 1
        faces = np.concatenate(
            [
                np.stack([k, k1, segments + k1], -1),
                np.stack([k, segments + k1, segments + k], -1),
                np.stack([np.full(segments, tc), segments + k, segments + k1], -1),
                np.stack([np.full(segments, bc), k1, k], -1),
            ]
        )
        return vertices, faces.astype(np.int64)


@dataclass(frozen=True)
class RoomShell:
    """The inside of an axis-aligned room ``lo`` (3,) .. ``hi`` (3,). Faces are numbered
    ``2 * axis + (1 if the face is at hi else 0)``: 0 west (x = lo), 1 east, 2 south (y = lo), 3 north,
    4 floor, 5 ceiling. Normals point into the room."""

    lo: np.ndarray
    hi: np.ndarray

    def intersect_faces(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exit distance ``t`` (N,) and face index (N,) of rays starting inside the room."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t_axis = np.where(dirs > 0, (self.hi - origin) / dirs, (self.lo - origin) / dirs)
        t_axis = np.where(dirs == 0, np.inf, t_axis)
        axis = np.argmin(t_axis, axis=1)
        rows = np.arange(len(dirs))
        t = t_axis[rows, axis]
        face = 2 * axis + (dirs[rows, axis] > 0).astype(np.int64)
        return t, face

    @staticmethod
    def face_normal(face: int) -> np.ndarray:
        """Inward unit normal of a face."""
        axis, at_hi = divmod(face, 2)
        normal = np.zeros(3)
        normal[axis] = -1.0 if at_hi else 1.0
        return normal

    def face_triangles(self, face: int) -> tuple[np.ndarray, np.ndarray]:
        """One inward-facing face as 4 vertices and 2 triangles."""
        axis, at_hi = divmod(face, 2)
        b, c = (axis + 1) % 3, (axis + 2) % 3
        vertices = np.zeros((4, 3))
        for i, (sb, sc) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
            vertices[i, axis] = self.hi[axis] if at_hi else self.lo[axis]
            vertices[i, b] = self.hi[b] if sb else self.lo[b]
            vertices[i, c] = self.hi[c] if sc else self.lo[c]
        # counter-clockwise around +e_axis; the inward normal is -e_axis at hi, +e_axis at lo
        faces = np.array([[0, 2, 1], [0, 3, 2]] if at_hi else [[0, 1, 2], [0, 2, 3]], dtype=np.int64)
        return vertices, faces

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance to the nearest wall/floor/ceiling, positive inside the room."""
        return np.minimum(np.min(points - self.lo, axis=-1), np.min(self.hi - points, axis=-1))


Primitive = Box | Cylinder


# ------------------------------------------------------------------------------------- ray casting


@dataclass
class RayGrid:
    """A regular grid of rays: pixel coordinates ``us`` (W',) and ``vs`` (H',) (integers = pixel
    centres), camera-to-world ``pose`` (4, 4) in the OpenCV convention and intrinsics ``k`` (3, 3)."""

    us: np.ndarray
    vs: np.ndarray
    pose: np.ndarray
    k: np.ndarray

    @property
    def origin(self) -> np.ndarray:
        return self.pose[:3, 3]

    def directions(self) -> np.ndarray:
        """Unnormalised world directions (H', W', 3) with unit z in the camera frame."""
        k = self.k
        x = (self.us - k[0, 2]) / k[0, 0]
        y = (self.vs - k[1, 2]) / k[1, 1]
        d_cam = np.empty((len(self.vs), len(self.us), 3))
        d_cam[..., 0] = x[None, :]
        d_cam[..., 1] = y[:, None]
        d_cam[..., 2] = 1.0
        return d_cam @ self.pose[:3, :3].T


@dataclass
class Hits:
    """Nearest hits of a set of rays (shape ``S``: (H', W') for a grid, (N,) for scattered rays):
    ``t`` z-depth ``S``, world ``normals`` ``S + (3,)``, ``primitive`` ``S`` index into the caster's
    list (shell faces are 0..5), world ``points`` ``S + (3,)`` and the ray ``dirs`` ``S + (3,)``."""

    t: np.ndarray
    normals: np.ndarray
    primitive: np.ndarray
    points: np.ndarray
    dirs: np.ndarray


NEAR = 1e-3


class RayCaster:
    """Exact nearest-hit ray casting of a room shell plus primitives, with screen-space culling.

    The primitive index of a hit is ``face`` (0..5) for the room shell and ``6 + i`` for
    ``primitives[i]``.
    """

    def __init__(self, shell: RoomShell, primitives: list[Primitive]) -> None:
        self.shell = shell
        self.primitives = list(primitives)
        self._corners = np.stack([p.corners() for p in self.primitives]) if self.primitives else np.zeros((0, 8, 3))
        bits = (np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1
        # the 12 edges of a corner cube: pairs of corners that differ in one bit
        self._edges = np.array([(i, i | (1 << a)) for i in range(8) for a in range(3) if not bits[i, a]])

    def screen_rects(self, pose: np.ndarray, k: np.ndarray) -> list[tuple[float, float, float, float] | None]:
        """Pixel bounds ``(u0, u1, v0, v1)`` of the projection of each primitive's bounding corners,
        clipped at the near plane; None for primitives entirely behind the camera."""
        rotation, origin = pose[:3, :3], pose[:3, 3]
        cam = (self._corners - origin) @ rotation  # (P, 8, 3) camera-frame corners
        rects: list[tuple[float, float, float, float] | None] = []
        for p in range(len(self.primitives)):
            pts = cam[p]
            front = pts[:, 2] > NEAR
            if not np.any(front):
                rects.append(None)
                continue
            if not np.all(front):
                a, b = pts[self._edges[:, 0]], pts[self._edges[:, 1]]
                crossing = (a[:, 2] > NEAR) != (b[:, 2] > NEAR)
                w = (NEAR - a[crossing, 2]) / (b[crossing, 2] - a[crossing, 2])
                clipped = a[crossing] + w[:, None] * (b[crossing] - a[crossing])
                pts = np.concatenate([pts[front], clipped])
            u = k[0, 0] * pts[:, 0] / pts[:, 2] + k[0, 2]
            v = k[1, 1] * pts[:, 1] / pts[:, 2] + k[1, 2]
            rects.append((u.min() - 1.0, u.max() + 1.0, v.min() - 1.0, v.max() + 1.0))
        return rects

    def _finish(self, origin: np.ndarray, dirs: np.ndarray, t: np.ndarray, primitive: np.ndarray) -> Hits:
        """Hit points and normals of flat (N,) results."""
        points = origin + dirs * t[:, None]
        normals = np.zeros_like(dirs)
        for group in index_groups(primitive):
            if len(group) == 0:
                continue
            index = int(primitive[group[0]])
            if index < 6:
                normals[group] = RoomShell.face_normal(index)
            else:
                normals[group] = self.primitives[index - 6].normal_at(points[group])
        return Hits(t=t, normals=normals, primitive=primitive, points=points, dirs=dirs)

    def cast(self, grid: RayGrid, surface: bool = True) -> Hits:
        """Cast a regular grid of rays; results have shape (H', W'). With ``surface=False`` only ``t``
        and ``primitive`` are filled (``normals`` and ``points`` are empty arrays)."""
        dirs = grid.directions()
        height, width = dirs.shape[:2]
        origin = grid.origin
        t, face = self.shell.intersect_faces(origin, dirs.reshape(-1, 3))
        t = t.reshape(height, width)
        primitive = face.reshape(height, width).astype(np.int32)
        for index, rect in enumerate(self.screen_rects(grid.pose, grid.k)):
            if rect is None:
                continue
            i0 = int(np.searchsorted(grid.us, rect[0], side="left"))
            i1 = int(np.searchsorted(grid.us, rect[1], side="right"))
            j0 = int(np.searchsorted(grid.vs, rect[2], side="left"))
            j1 = int(np.searchsorted(grid.vs, rect[3], side="right"))
            if i1 <= i0 or j1 <= j0:
                continue
            t_new = self.primitives[index].intersect(origin, dirs[j0:j1, i0:i1].reshape(-1, 3))
            t_block = t[j0:j1, i0:i1]
            better = t_new.reshape(t_block.shape) < t_block
            if np.any(better):
                t_block[better] = t_new.reshape(t_block.shape)[better]
                primitive[j0:j1, i0:i1][better] = 6 + index
        if not surface:
            return Hits(t=t, normals=np.zeros((0, 3)), primitive=primitive, points=np.zeros((0, 3)), dirs=dirs)
        hits = self._finish(origin, dirs.reshape(-1, 3), t.reshape(-1), primitive.reshape(-1))
        return Hits(
            t=t,
            normals=hits.normals.reshape(height, width, 3),
            primitive=primitive,
            points=hits.points.reshape(height, width, 3),
            dirs=dirs,
        )

    def cast_pixels(self, pose: np.ndarray, k: np.ndarray, u: np.ndarray, v: np.ndarray) -> Hits:
        """Cast rays through scattered pixel coordinates ``u``, ``v`` (N,); results have shape (N,)."""
        d_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones(len(u))], axis=-1)
        dirs = d_cam @ pose[:3, :3].T
        origin = pose[:3, 3]
        t, face = self.shell.intersect_faces(origin, dirs)
        primitive = face.astype(np.int32)
        if len(u):
            for index, rect in enumerate(self.screen_rects(pose, k)):
                if rect is None:
                    continue
                sel = np.flatnonzero((u >= rect[0]) & (u <= rect[1]) & (v >= rect[2]) & (v <= rect[3]))
                if len(sel) == 0:
                    continue
                t_new = self.primitives[index].intersect(origin, dirs[sel])
                better = t_new < t[sel]
                if np.any(better):
                    t[sel[better]] = t_new[better]
                    primitive[sel[better]] = 6 + index
        return self._finish(origin, dirs, t, primitive)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance (N,) from points to the nearest primitive or room surface (negative inside one)."""
        distance = self.shell.signed_distance(points)
        for prim in self.primitives:
            distance = np.minimum(distance, prim.signed_distance(points))
        return distance
