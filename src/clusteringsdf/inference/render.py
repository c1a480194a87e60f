"""Render views of a trained run and write them in the layout ``clusteringsdf eval`` reads.

Per frame: ``rgb/<f>.png``, ``depth/<f>.png`` (uint16 mm), ``normal/<f>.png`` (camera frame),
``pred_semantics/<f>.png`` and ``pred_instance/<f>.png`` (0 = stuff / background).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import layout
from ..model.renderer import Renderer, RenderRequest
from ..sampling.rays import RayBatch, pixel_rays, ray_box_bounds
from .panoptic import fuse_panoptic


@dataclass
class ViewRender:
    """One rendered view at H x W: rgb (H, W, 3) in [0, 1]; depth (H, W) normalised z-depth;
    normal (H, W, 3) camera frame; semantic (H, W) arg-max class; semantic_stuff (H, W) arg-max
    over stuff classes only; channel (H, W) arg-max opacity channel; optional embedding (H, W, E)."""

    rgb: np.ndarray
    depth: np.ndarray
    normal: np.ndarray | None
    semantic: np.ndarray
    channel: np.ndarray
    semantic_stuff: np.ndarray | None = None
    embedding: np.ndarray | None = None


def camera_rays(pose: torch.Tensor, intrinsics: torch.Tensor, hw: tuple[int, int], bbox: torch.Tensor, near: float) -> RayBatch:
    """All H*W rays of a camera (raster order)."""
    height, width = hw
    device = pose.device
    v, u = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    v, u = v.reshape(-1), u.reshape(-1)
    origins, directions, dz = pixel_rays(pose, intrinsics, v, u)
    t_near, t_far = ray_box_bounds(origins, directions, bbox, near)
    count = v.shape[0]
    return RayBatch(
        origins=origins,
        directions=directions,
        cam_to_world=pose[:3, :3].expand(count, 3, 3),
        dz=dz,
        near=t_near,
        far=t_far,
        frame=torch.zeros(count, dtype=torch.int64, device=device),
        pixel=torch.stack([v, u], -1),
    )


@torch.no_grad()
def render_view(
    renderer: Renderer,
    pose: torch.Tensor,
    intrinsics: torch.Tensor,
    hw: tuple[int, int],
    chunk: int,
    near: float,
    normals: bool = True,
    embedding: bool = False,
    semantic_from_channels: bool = False,
    stuff_classes: tuple[int, ...] = (),
) -> ViewRender:
    """Render one camera (pose (4, 4) normalised camera-to-world, intrinsics (3, 3)) at hw.

    ``semantic_from_channels``: the semantic mode's reading, class = arg-max over channels 1..C-1.
    ``stuff_classes``: also return the arg-max over these classes (class 0 excluded).
    """
    rays = camera_rays(pose, intrinsics, hw, renderer.bbox, near)
    request = RenderRequest(normals=normals, opacity=True, semantics=not semantic_from_channels, embedding=embedding)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("rgb", "depth", "normal", "semantic", "semantic_stuff", "channel", "embedding")}
    stuff_mask = None
    if stuff_classes and not semantic_from_channels:
        stuff_mask = torch.zeros(renderer.field.num_classes, dtype=torch.bool, device=pose.device)
        stuff_mask[[c for c in stuff_classes if 0 < c < renderer.field.num_classes]] = True
    for start in range(0, len(rays), chunk):
        out = renderer(rays.select(slice(start, start + chunk)), request, train=False)
        parts["rgb"].append(out["rgb"].clamp(0, 1))
        parts["depth"].append(out["depth"])
        if normals:
            parts["normal"].append(out["normal"])
        opacity = out["opacity"]
        parts["channel"].append(opacity.argmax(-1))
        if semantic_from_channels:
            parts["semantic"].append(opacity[:, 1:].argmax(-1) + 1)
        else:
            parts["semantic"].append(out["semantics"].argmax(-1))
            if stuff_mask is not None:
                parts["semantic_stuff"].append(out["semantics"].masked_fill(~stuff_mask, -1.0).argmax(-1))
        if embedding:
            parts["embedding"].append(out["embedding"])
    height, width = hw

    def join(name: str, *shape: int) -> np.ndarray | None:
        if not parts[name]:
            return None
        return torch.cat(parts[name]).reshape(height, width, *shape).cpu().numpy()

    return ViewRender(
        rgb=join("rgb", 3),
        depth=join("depth"),
        normal=join("normal", 3),
        semantic=join("semantic"),
        channel=join("channel"),
        semantic_stuff=join("semantic_stuff"),
        embedding=join("embedding", -1),
    )


def write_view(out_dir: Path, name: str, view: ViewRender, scale: float, semantic: np.ndarray, instance: np.ndarray) -> None:
    """Write one view's images and label maps (depth converted to metres with 1 / scale)."""
    layout.write_color(out_dir / "rgb" / f"{name}.png", np.round(view.rgb * 255).astype(np.uint8))
    layout.write_depth(out_dir / "depth" / f"{name}.png", view.depth / scale)
    if view.normal is not None:
        layout.write_normal(out_dir / "normal" / f"{name}.png", view.normal)
    layout.write_label(out_dir / "pred_semantics" / f"{name}.png", semantic)
    layout.write_label(out_dir / "pred_instance" / f"{name}.png", instance)


def render_frames(
    renderer: Renderer,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    hw: tuple[int, int],
    names: list[str],
    out_dir: Path,
    scale: float,
    thing_classes: tuple[int, ...],
    stuff_classes: tuple[int, ...],
    chunk: int,
    near: float,
    semantic_from_channels: bool = False,
    progress: bool = True,
) -> list[ViewRender]:
    """Render cameras (F, 4, 4) / (F, 3, 3), fuse panoptic labels across all of them and write them."""
    from tqdm import tqdm

    device = renderer.bbox.device
    views = []
    for i in tqdm(range(len(names)), desc="render", disable=not progress, unit="view"):
        pose = torch.as_tensor(poses[i], dtype=torch.float32, device=device)
        k = torch.as_tensor(intrinsics[i], dtype=torch.float32, device=device)
        views.append(render_view(renderer, pose, k, hw, chunk, near, semantic_from_channels=semantic_from_channels, stuff_classes=stuff_classes))
    stuff = [v.semantic_stuff for v in views] if views and views[0].semantic_stuff is not None else None
    semantics, instances = fuse_panoptic([v.semantic for v in views], [v.channel for v in views], thing_classes, stuff)
    for name, view, sem, ins in zip(names, views, semantics, instances):
        write_view(out_dir, name, view, scale, sem, ins)
    return views
