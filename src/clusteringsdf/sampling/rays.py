"""Camera rays (OpenCV pinhole, integer pixel coordinates at pixel centres) and ray-box bounds."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class RayBatch:
    """A batch of R rays with their supervision.

    origins, directions: (R, 3) normalised world frame, unit directions.
    cam_to_world: (R, 3, 3) rotation of each ray's camera (to express normals in the camera frame).
    dz: (R,) z-component of the camera-frame unit direction (ray distance * dz = z-depth).
    near, far: (R,) ray distance bounds (normalised units).
    frame: (R,) frame index; pixel: (R, 2) (v, u) integer pixel coordinates.
    Measurements, when the scene has them: rgb (R, 3) in [0, 1]; depth (R,) z-depth in normalised
    units (0 = missing); normal (R, 3) camera frame (zero = missing).
    targets: the training method's per-pixel targets at the rays, by name (see
    :class:`clusteringsdf.sampling.frames.PixelTargets`): integer labels (R,) int64, weights (R,) float32.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    cam_to_world: torch.Tensor
    dz: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    frame: torch.Tensor
    pixel: torch.Tensor
    rgb: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    normal: torch.Tensor | None = None
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.origins.shape[0]

    def select(self, index: torch.Tensor | slice) -> "RayBatch":
        """A sub-batch (every tensor, targets included, indexed by ``index``)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value[index]
            elif isinstance(value, dict):
                value = {k: v[index] for k, v in value.items()}
            values[f.name] = value
        return RayBatch(**values)


def pixel_rays(
    cam_to_world: torch.Tensor, intrinsics: torch.Tensor, v: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays through pixels.

    Args:
        cam_to_world: (R, 4, 4) or (4, 4) camera-to-world pose per ray.
        intrinsics: (R, 3, 3) or (3, 3).
        v, u: (R,) pixel row / column (float or int; integers are pixel centres).

    Returns:
        origins (R, 3), unit directions (R, 3), dz (R,) = z of the unit camera-frame direction.
    """
    if cam_to_world.dim() == 2:
        cam_to_world = cam_to_world.expand(v.shape[0], 4, 4)
    if intrinsics.dim() == 2:
        intrinsics = intrinsics.expand(v.shape[0], 3, 3)
    u = u.to(intrinsics.dtype)
    v = v.to(intrinsics.dtype)
    fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    cx, cy, skew = intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1]
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    cam = cam / cam.norm(dim=-1, keepdim=True)
    directions = torch.einsum("rij,rj->ri", cam_to_world[:, :3, :3], cam)
    return cam_to_world[:, :3, 3].clone(), directions, cam[:, 2].clone()


def ray_box_bounds(
    origins: torch.Tensor, directions: torch.Tensor, bbox: torch.Tensor, near: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry/exit distances of rays (R, 3) with an axis-aligned box (2, 3) (slab method).

    near is clamped to at least ``near``; rays that miss the box get far = near + 1e-3.
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t0 = (bbox[0] - origins) / safe
    t1 = (bbox[1] - origins) / safe
    t_enter = torch.minimum(t0, t1).amax(dim=-1).clamp_min(near)
    t_exit = torch.maximum(t0, t1).amin(dim=-1)
    t_exit = torch.maximum(t_exit, t_enter + 1e-3)
    return t_enter, t_exit
