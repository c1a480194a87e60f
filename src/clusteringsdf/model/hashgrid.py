"""Multi-resolution hash-grid encoding in pure PyTorch, with an analytic spatial Jacobian.

The encoding of a point is, per level, the smoothstep-weighted interpolation of the feature vectors
stored at the 8 corners of its lattice cell (Instant-NGP, with ObjectSDF++'s smoothstep weights so
the field is C1). Coarse levels whose lattice fits the table are stored densely, finer levels are
hashed. Points outside the grid's box get zero features and a zero Jacobian.

Why an analytic Jacobian: the eikonal term needs d(feature)/dx. Autograd's double backward through
the gathers is the CPU bottleneck; instead the forward pass returns the Jacobian
``sum_c dw_c/dx * table[corner_c]`` computed from the same gathered rows, and a custom autograd
function scatters the gradient of both outputs into the table with a single ``index_add_``. The loss
then needs only a first-order backward. Gradients with respect to the input points are not provided
(points never require grad in this project).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Per-axis hash primes (Teschner et al.), as in Instant-NGP.
_PRIMES = (1, 2654435761, 805459861)


class _GridInterpolation(torch.autograd.Function):
    """Interpolate table rows with precomputed corner indices and weight matrices.

    forward(table (T, F), index (N, L, 8) int, weights (N, L, K, 8)) -> (N, L, K, F)
    where row 0 of ``weights`` holds the interpolation weights and rows 1..3 (when K = 4) their
    spatial derivatives, so the output holds the features and their Jacobian. The output is linear
    in ``table``; backward scatters ``weights^T @ grad`` into it with one index_add_.
    """

    @staticmethod
    def forward(ctx, table, index, weights):  # type: ignore[override]
        rows = table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])  # (N, L, 8, F)
        ctx.save_for_backward(index, weights)
        ctx.table_shape = table.shape
        return torch.matmul(weights, rows)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        index, weights = ctx.saved_tensors
        grad_rows = torch.matmul(weights.transpose(-1, -2), grad_out)  # (N, L, 8, F)
        grad_table = torch.zeros(ctx.table_shape, dtype=grad_rows.dtype, device=grad_rows.device)
        grad_table.index_add_(0, index.reshape(-1), grad_rows.reshape(-1, ctx.table_shape[1]))
        return grad_table, None, None


class HashGrid(nn.Module):
    """Multi-resolution hash-grid encoding over an axis-aligned box.

    Args:
        bbox: (2, 3) lower and upper corner of the encoded box (points outside encode to zero).
        levels: number of resolution levels L.
        features_per_level: F.
        log2_table_size: log2 of the maximum number of entries per level.
        base_resolution: cells per axis at the coarsest level.
        finest_resolution: cells per axis at the finest level (geometric growth in between).
        init_scale: table entries start uniform in [-init_scale, init_scale].
    """

    def __init__(
        self,
        bbox: torch.Tensor,
        levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
        init_scale: float = 1e-4,
    ) -> None:
        super().__init__()
        self.levels = levels
        self.features_per_level = features_per_level
        growth = math.exp(math.log(finest_resolution / base_resolution) / max(levels - 1, 1))
        resolutions, sizes = [], []
        for level in range(levels):
            res = int(math.floor(base_resolution * growth**level))
            vertices = (res + 1) ** 3
            size = min(vertices, 2**log2_table_size)
            resolutions.append(res)
            sizes.append(size)
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        self.resolutions = resolutions
        self.register_buffer("bbox", torch.as_tensor(bbox, dtype=torch.float32).clone())
        self.register_buffer("_res", torch.tensor(resolutions, dtype=torch.float32), persistent=False)
        self.register_buffer("_res_int", torch.tensor(resolutions, dtype=torch.int64), persistent=False)
        # Levels whose whole lattice fits the table are dense; resolutions grow, so they come first.
        self._num_dense = sum(1 for res, size in zip(resolutions, sizes) if (res + 1) ** 3 <= size)
        self._hash_mask = 2**log2_table_size - 1
        self.register_buffer("_offsets", torch.tensor(offsets[:-1], dtype=torch.int64), persistent=False)
        self.table = nn.Parameter(torch.empty(offsets[-1], features_per_level).uniform_(-init_scale, init_scale))

    @property
    def output_dim(self) -> int:
        return self.levels * self.features_per_level

    def _corner_indices(self, cell: torch.Tensor) -> torch.Tensor:
        """Table rows of the 8 corners of each cell: cell (N, L, 3) int64 -> (N, L, 8) int64.

        Corner c = 4*bz + 2*by + bx. Per-axis terms are computed once for both corner bits and
        combined by broadcasting (much cheaper than hashing (N, L, 8, 3) coordinates). Dense levels
        come first and are indexed row-major, the rest are hashed.
        """
        n, nd = cell.shape[0], self._num_dense
        both = torch.stack([cell, cell + 1], dim=-1)  # (N, L, 3, 2)
        parts = []
        if nd > 0:
            x, y, z = both[:, :nd].unbind(2)  # each (N, Ld, 2)
            stride = (self._res_int[:nd] + 1).view(1, -1, 1)
            parts.append(
                x.view(n, nd, 1, 1, 2) + (y * stride).view(n, nd, 1, 2, 1) + (z * (stride * stride)).view(n, nd, 2, 1, 1)
            )
        nh = self.levels - nd
        if nh > 0:
            x, y, z = both[:, nd:].unbind(2)  # each (N, Lh, 2)
            hashed = (
                (x * _PRIMES[0]).view(n, nh, 1, 1, 2)
                ^ (y * _PRIMES[1]).view(n, nh, 1, 2, 1)
                ^ (z * _PRIMES[2]).view(n, nh, 2, 1, 1)
            )
            parts.append(hashed & self._hash_mask)
        index = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return index.view(n, self.levels, 8) + self._offsets.view(1, -1, 1)

    def forward(self, points: torch.Tensor, with_jacobian: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode points.

        Args:
            points: (N, 3) world-frame (normalised scene) coordinates.
            with_jacobian: also return d(encoding)/d(points).

        Returns:
            features (N, L*F) and, if requested, jacobian (N, 3, L*F), else None.
        """
        n, levels = points.shape[0], self.levels
        extent = self.bbox[1] - self.bbox[0]
        unit = (points.detach() - self.bbox[0]) / extent  # (N, 3) in [0, 1] inside the box
        inside = ((unit >= 0) & (unit <= 1)).all(dim=-1).to(points.dtype).view(n, 1, 1)
        position = unit.clamp(0.0, 1.0).unsqueeze(1) * self._res.view(1, -1, 1)  # (N, L, 3)
        cell = torch.minimum(position.floor().long(), (self._res_int - 1).view(1, -1, 1))
        frac = position - cell.to(position.dtype)  # (N, L, 3) in [0, 1]
        smooth = frac * frac * (3.0 - 2.0 * frac)
        # Per-axis factor for corner bit 0 and 1: (1 - s, s); zero outside the box. Each (N, L, 2).
        fx, fy, fz = torch.stack([1.0 - smooth, smooth], dim=-1).unbind(2)
        fx = fx * inside
        fx, fy, fz = fx.view(n, levels, 1, 1, 2), fy.view(n, levels, 1, 2, 1), fz.view(n, levels, 2, 1, 1)
        yx = fy * fx
        rows = [(fz * yx).view(n, levels, 1, 8)]
        if with_jacobian:
            dsmooth = 6.0 * frac * (1.0 - frac) * (self._res.view(1, -1, 1) / extent) * inside  # ds/dx (N, L, 3)
            dx, dy, dz = torch.stack([-dsmooth, dsmooth], dim=-1).unbind(2)
            dx, dy, dz = dx.view(n, levels, 1, 1, 2), dy.view(n, levels, 1, 2, 1), dz.view(n, levels, 2, 1, 1)
            rows += [(fz * fy * dx).view(n, levels, 1, 8), (fz * dy * fx).view(n, levels, 1, 8), (dz * yx).view(n, levels, 1, 8)]
        weights = torch.cat(rows, dim=2) if with_jacobian else rows[0]  # (N, L, K, 8)

        out = _GridInterpolation.apply(self.table, self._corner_indices(cell), weights)  # (N, L, K, F)
        features = out[:, :, 0].reshape(n, -1)
        if not with_jacobian:
            return features, None
        return features, out[:, :, 1:].transpose(1, 2).reshape(n, 3, -1)
