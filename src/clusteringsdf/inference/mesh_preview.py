"""Offscreen mesh previews without OpenGL: an orthographic "dollhouse" view by z-buffered splatting.

Each front-facing triangle is sampled at barycentric combinations of its vertices (its centroid alone
when triangles project to under 2 pixels, as a mesh at 256 does; up to 10 points for large ones), the
samples are projected orthographically and the nearest sample per pixel wins (2 x 2 splats close the
gaps).
Back faces are culled, so for a room mesh (normals point into free space, as marching cubes
writes them) the ceiling and the near walls disappear and the interior is visible from above.
"""

from __future__ import annotations

import numpy as np

# barycentric sample weights per triangle: vertices, centroid, edge midpoints, inner points
_BARYCENTRIC = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5],
     [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]]
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def preview_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    up: np.ndarray,
    *,
    size: tuple[int, int] = (360, 480),
    elevation_deg: float = 55.0,
    azimuth_deg: float = 30.0,
    max_samples: int = 4_000_000,
) -> np.ndarray:
    """uint8 (H, W, 3) picture of a mesh: vertices (n, 3), faces (m, 3), vertex colours (n, 3) uint8,
    ``up`` (3,) the world up direction. White background."""
    height, width = size
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    if len(faces) == 0:
        return image
    up = _unit(np.asarray(up, dtype=np.float64))
    helper = np.eye(3)[int(np.argmin(np.abs(up)))]
    e1 = _unit(helper - helper.dot(up) * up)
    e2 = np.cross(up, e1)
    elevation, azimuth = np.radians(elevation_deg), np.radians(azimuth_deg)
    to_camera = np.cos(elevation) * (np.cos(azimuth) * e1 + np.sin(azimuth) * e2) + np.sin(elevation) * up
    right = _unit(np.cross(-to_camera, up))
    screen_up = np.cross(right, -to_camera)

    corners = vertices[faces].astype(np.float64)  # (m, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normals, axis=1)
    front = (normals @ to_camera > 0) & (length > 0)
    corners, normals = corners[front], normals[front] / length[front, None]
    if len(corners) == 0:
        return image
    corner_colors = colors[faces[front]].astype(np.float64)  # (k, 3, 3)
    corner_x, corner_y = corners @ right, corners @ screen_up  # (k, 3) each: screen coordinates
    extent = max(float(np.ptp(corner_x)) / (width * 0.94), float(np.ptp(corner_y)) / (height * 0.94), 1e-9)  # world units per pixel
    edge_x, edge_y = corner_x[:, 1:] - corner_x[:, :1], corner_y[:, 1:] - corner_y[:, :1]
    projected = 0.5 * np.abs(edge_x[:, 0] * edge_y[:, 1] - edge_x[:, 1] * edge_y[:, 0]) / extent**2
    mean_area = float(projected.mean())  # pixels per triangle
    weights = _BARYCENTRIC[3:4] if mean_area < 2 else _BARYCENTRIC[:4] if mean_area < 8 or len(corners) * len(_BARYCENTRIC) > max_samples else _BARYCENTRIC
    points = np.einsum("sv,kvc->ksc", weights, corners).reshape(-1, 3)
    point_colors = np.einsum("sv,kvc->ksc", weights, corner_colors).reshape(-1, 3)
    light = _unit(to_camera + 0.5 * up)
    shade = np.repeat(0.35 + 0.65 * np.clip(normals @ light, 0.0, 1.0), len(weights))
    point_colors = np.clip(point_colors * shade[:, None], 0, 255).astype(np.uint8)

    x, y, depth = points @ right, points @ screen_up, points @ to_camera
    px = ((x - (corner_x.min() + corner_x.max()) / 2) / extent + width / 2).astype(np.int64)
    py = (height / 2 - (y - (corner_y.min() + corner_y.max()) / 2) / extent).astype(np.int64)
    zbuffer_x, zbuffer_y, zbuffer_d, zbuffer_c = [], [], [], []
    for dx in (0, 1):
        for dy in (0, 1):
            zbuffer_x.append(px + dx)
            zbuffer_y.append(py + dy)
            zbuffer_d.append(depth)
            zbuffer_c.append(point_colors)
    px, py = np.concatenate(zbuffer_x), np.concatenate(zbuffer_y)
    depth, point_colors = np.concatenate(zbuffer_d), np.concatenate(zbuffer_c)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    pixel = py[inside] * width + px[inside]
    order = np.lexsort((-depth[inside], pixel))  # per pixel, the sample nearest the camera first
    first = np.unique(pixel[order], return_index=True)[1]
    winners = order[first]
    image.reshape(-1, 3)[pixel[winners]] = point_colors[inside][winners]
    return image
