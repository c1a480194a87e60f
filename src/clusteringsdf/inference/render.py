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
from ..data.scene import class_mask
from ..methods import Method
from ..model import Model
from ..sampling.rays import RayBatch, pixel_rays, ray_box_bounds


@dataclass
class ViewRender:
    """One rendered view at H x W: rgb (H, W, 3) in [0, 1]; depth (H, W) normalised z-depth;
    normal (H, W, 3) camera frame or None; semantic (H, W) arg-max class; semantic_stuff (H, W)
    arg-max over stuff classes; channel / channel_second (H, W) best and second-best object channel;
    embedding (H, W, E) or None.

    Class scores are the method's (:meth:`Method.class_scores`: the semantic head, or for a
    semantic-mode run the object opacities); classes absent from the training labels are never
    predicted.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normal: np.ndarray | None
    semantic: np.ndarray
    semantic_stuff: np.ndarray
    channel: np.ndarray
    channel_second: np.ndarray
    embedding: np.ndarray | None = None


def camera_rays(pose: torch.Tensor, intrinsics: torch.Tensor, hw: tuple[int, int], bbox: torch.Tensor, *, near: float) -> RayBatch:
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
    model: Model,
    method: Method,
    pose: torch.Tensor,
    intrinsics: torch.Tensor,
    *,
    hw: tuple[int, int],
    chunk: int,
    near: float,
    stuff_classes: tuple[int, ...],
    normals: bool = True,
    surface: bool = False,
) -> ViewRender:
    """Render one camera (pose (4, 4) normalised camera-to-world, intrinsics (3, 3)) at hw, by
    volume rendering (what the scores are measured on) or, with ``surface``, at each ray's first
    surface (:meth:`Model.render`: about 5x faster, for trajectories and the viewer)."""
    rays = camera_rays(pose, intrinsics, hw, model.bbox, near=near)
    request = method.render_request(normals)
    num_classes = model.field.num_classes
    stuff = torch.as_tensor(class_mask(stuff_classes, num_classes), device=pose.device)
    allowed = method.votes.observed_classes()  # scores of other classes are masked below
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("rgb", "depth", "normal", "semantic", "semantic_stuff", "channel", "channel_second", "embedding")}
    for start in range(0, len(rays), chunk):
        batch = rays.select(slice(start, start + chunk))
        out = model.render(batch, request) if surface else model(batch, request, train=False)
        parts["rgb"].append(out.rgb.clamp(0, 1))
        parts["depth"].append(out.depth)
        if normals:
            parts["normal"].append(out.normal)
        ranked = out.opacity.topk(2, dim=-1).indices
        parts["channel"].append(ranked[:, 0])
        parts["channel_second"].append(ranked[:, 1])
        scores = method.class_scores(out).masked_fill(~allowed, -2.0)
        parts["semantic"].append(scores.argmax(-1))
        parts["semantic_stuff"].append(scores.masked_fill(~stuff, -2.0).argmax(-1))
        if request.embedding:
            parts["embedding"].append(out.embedding)
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
        semantic_stuff=join("semantic_stuff"),
        channel=join("channel"),
        channel_second=join("channel_second"),
        embedding=join("embedding", -1),
    )


def render_views(
    model: Model,
    method: Method,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    *,
    hw: tuple[int, int],
    stuff_classes: tuple[int, ...],
    chunk: int,
    near: float,
    normals: bool = True,
    progress: bool = True,
    desc: str = "render",
    surface: bool = False,
) -> list[ViewRender]:
    """Render cameras: poses (F, 4, 4) normalised camera-to-world, intrinsics (F, 3, 3); ``surface``
    as in :func:`render_view`."""
    from tqdm import tqdm

    device = model.bbox.device
    views = []
    for i in tqdm(range(len(poses)), desc=desc, disable=not progress, unit="view"):
        pose = torch.as_tensor(poses[i], dtype=torch.float32, device=device)
        k = torch.as_tensor(intrinsics[i], dtype=torch.float32, device=device)
        views.append(render_view(model, method, pose, k, hw=hw, chunk=chunk, near=near, stuff_classes=stuff_classes, normals=normals, surface=surface))
    return views


def write_views(
    out_dir: Path, names: list[str], views: list[ViewRender], semantics: list[np.ndarray], *, instances: list[np.ndarray], scale: float
) -> None:
    """Write images and label maps (depth converted to metres with 1 / scale)."""
    for name, view, semantic, instance in zip(names, views, semantics, instances):
        layout.write_color(out_dir / "rgb" / f"{name}.png", np.round(view.rgb * 255).astype(np.uint8))
        layout.write_depth(out_dir / "depth" / f"{name}.png", view.depth / scale)
        if view.normal is not None:
            layout.write_normal(out_dir / "normal" / f"{name}.png", view.normal)
        layout.write_label(out_dir / "pred_semantics" / f"{name}.png", semantic)
        layout.write_label(out_dir / "pred_instance" / f"{name}.png", instance)
