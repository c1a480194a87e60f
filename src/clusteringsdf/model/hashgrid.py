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
    """Interpolate table rows with precomputed corner indices and weights ("structure of arrays").

    forward(table (T, F), (rows_first (F, T) contiguous copy of the table, index (8*L*N,) int64),
    weights (8, L, N), dweights (3, 8, L, N) or None)
      -> features (F, L, N) and jacobian (3, F, L, N) (an empty tensor without ``dweights``).

    Everything is laid out with the long L*N axis last: broadcasting over the corner/axis
    dimensions then runs at full memory speed on the CPU (an (N, L, 8) layout is ~10x slower).
    Both outputs are linear in ``table``; backward scatters into it with one ``index_add_``.
    """

    @staticmethod
    def forward(ctx, table, lookup, weights, dweights):  # type: ignore[override]
        rows_first, index = lookup
        corners, levels, n = weights.shape
        f = table.shape[1]
        # gather from the (F, T) transpose (a copy of the small table): the rows come out (F, 8*L*N)
        # already, where transposing gathered (8*L*N, F) rows would cost three times the gather
        rows = rows_first.index_select(1, index).view(f, corners, levels, n)  # (F, 8, L, N)
        features = (rows * weights).sum(1)
        if dweights is not None:
            jacobian = torch.stack([(rows * dweights[a]).sum(1) for a in range(3)])
        else:
            jacobian = table.new_empty(0)
        ctx.save_for_backward(index, weights, dweights if dweights is not None else table.new_empty(0))
        ctx.has_jacobian = dweights is not None
        ctx.table_shape = table.shape
        return features, jacobian

    @staticmethod
    def backward(ctx, grad_features, grad_jacobian):  # type: ignore[override]
        index, weights, dweights = ctx.saved_tensors
        grad_rows = weights * grad_features.unsqueeze(1)  # (F, 8, L, N)
        if ctx.has_jacobian and grad_jacobian is not None and grad_jacobian.numel() > 0:
            for a in range(3):
                grad_rows = grad_rows + dweights[a] * grad_jacobian[a].unsqueeze(1)
        size, f = ctx.table_shape
        grad_table = torch.zeros(f, size, dtype=grad_rows.dtype, device=grad_rows.device)
        grad_table.index_add_(1, index, grad_rows.reshape(f, -1))
        return grad_table.t(), None, None, None


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
        *,
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
        # Levels whose whole lattice fits the table are dense; resolutions grow, so they come first.
        self._num_dense = sum(1 for res, size in zip(resolutions, sizes) if (res + 1) ** 3 <= size)
        self._hash_mask = 2**log2_table_size - 1
        self.register_buffer("_offsets", torch.tensor(offsets[:-1], dtype=torch.int32), persistent=False)
        stride = torch.tensor([res + 1 for res in resolutions[: self._num_dense]], dtype=torch.int32)
        bits = torch.tensor([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], dtype=torch.int32)  # (8, 3): bz, by, bx
        steps = bits[:, 0:1] * stride * stride + bits[:, 1:2] * stride + bits[:, 2:3]  # (8, Ld)
        self.register_buffer("_dense_stride", stride, persistent=False)
        self.register_buffer("_dense_steps", steps.unsqueeze(-1), persistent=False)  # (8, Ld, 1)
        self._masked_primes = tuple(prime & self._hash_mask for prime in _PRIMES)
        self.table = nn.Parameter(torch.empty(offsets[-1], features_per_level).uniform_(-init_scale, init_scale))
        self._rows_first: torch.Tensor | None = None  # the cached (F, T) transpose of a frozen table

    # the cached copy is dropped whenever the table may change or move: a mode switch, loaded weights, .to()
    def train(self, mode: bool = True) -> "HashGrid":
        self._rows_first = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._rows_first = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._rows_first = None
        return super()._apply(fn, *args, **kwargs)

    def _table_rows_first(self) -> torch.Tensor:
        """The table as a contiguous (F, T) copy (a few MB). In eval mode without autograd (rendering,
        meshing: thousands of small batches) the copy is made once and kept until the module leaves
        eval mode: eval mode promises a frozen table (an optimiser's in-place step need not bump the
        tensor's version counter, so nothing cheaper can tell a change); training copies it every call."""
        if self.training or torch.is_grad_enabled():
            return self.table.detach().t().contiguous()
        if self._rows_first is None:
            self._rows_first = self.table.detach().t().contiguous()
        return self._rows_first

    @property
    def output_dim(self) -> int:
        return self.levels * self.features_per_level

    def _corner_indices(self, cell: torch.Tensor) -> torch.Tensor:
        """Table rows of the 8 cell corners: cell (3, L, N) int32 -> (8, L, N) int64.

        Corner c = 4*bz + 2*by + bx. Dense levels (a prefix, since resolutions grow) are indexed
        row-major: the corner-000 row plus a per-level constant step per corner. The others are
        hashed; XOR and the power-of-two mask commute, so each per-axis term is masked before they
        are combined, and the low bits of a product only depend on the low bits of its factors, so
        masked primes give the same rows in int32 arithmetic without overflow (int32 halves the
        memory traffic of this, the grid's dearest step after the gather).
        """
        n = cell.shape[-1]
        nd, nh = self._num_dense, self.levels - self._num_dense
        # int64 rows: index_add_ (the backward) is 50x slower with an int32 index on the CPU
        index = torch.empty(2, 2, 2, self.levels, n, dtype=torch.int64, device=cell.device)  # (bz, by, bx, L, N)
        x, y, z = cell.unbind(0)  # each (L, N)
        if nd > 0:
            stride = self._dense_stride.view(-1, 1)  # (Ld, 1)
            base = z[:nd] * (stride * stride) + y[:nd] * stride + x[:nd] + self._offsets[:nd].view(-1, 1)
            torch.add(base.unsqueeze(0), self._dense_steps, out=index.view(8, self.levels, n)[:, :nd])
        if nh > 0:
            mask = self._hash_mask
            terms = []
            for axis, prime in zip((x, y, z), self._masked_primes):
                term = torch.empty(2, nh, n, dtype=torch.int32, device=cell.device)
                torch.mul(axis[nd:], prime, out=term[0])
                torch.add(term[0], prime, out=term[1])  # (c + 1) * p
                terms.append(term.bitwise_and_(mask))
            hx, hy, hz = terms
            hashed = hz.view(2, 1, 1, nh, n) ^ hy.view(1, 2, 1, nh, n)
            torch.add(hashed ^ hx.view(1, 1, 2, nh, n), self._offsets[nd:].view(-1, 1), out=index[:, :, :, nd:])
        return index.view(8, self.levels, n)

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
        unit = ((points.detach() - self.bbox[0]) / extent).t()  # (3, N), in [0, 1] inside the box
        inside = ((unit >= 0) & (unit <= 1)).all(dim=0).to(points.dtype)  # (N,)
        position = unit.clamp(0.0, 1.0).unsqueeze(1) * self._res.view(1, -1, 1)  # (3, L, N)
        cell = torch.minimum(position.floor(), (self._res - 1).view(1, -1, 1))  # whole numbers, exact in float32
        frac = position - cell  # (3, L, N) in [0, 1]
        smooth = frac * frac * (3.0 - 2.0 * frac)
        factor = torch.stack([1.0 - smooth, smooth], dim=1)  # (3, 2, L, N): corner bit 0 / 1
        factor[0] *= inside  # zero weights (and derivatives) outside the box
        fx, fy, fz = factor[0].view(1, 1, 2, levels, n), factor[1].view(1, 2, 1, levels, n), factor[2].view(2, 1, 1, levels, n)
        zy = fz * fy
        weights = (zy * fx).view(8, levels, n)
        dweights = None
        if with_jacobian:
            dsmooth = 6.0 * frac * (1.0 - frac) * (self._res.view(1, -1, 1) / extent.view(3, 1, 1))  # ds/dx (3, L, N)
            dsmooth[0] *= inside
            dfactor = torch.stack([-dsmooth, dsmooth], dim=1)  # (3, 2, L, N)
            dx, dy, dz = dfactor[0].view(1, 1, 2, levels, n), dfactor[1].view(1, 2, 1, levels, n), dfactor[2].view(2, 1, 1, levels, n)
            dweights = torch.stack([(zy * dx).view(8, levels, n), (fz * dy * fx).view(8, levels, n), (dz * fy * fx).view(8, levels, n)])

        index = self._corner_indices(cell.to(torch.int32)).view(-1)
        features, jacobian = _GridInterpolation.apply(self.table, (self._table_rows_first(), index), weights, dweights)
        features = features.permute(2, 1, 0).reshape(n, self.output_dim)  # (N, L*F), level-major
        if not with_jacobian:
            return features, None
        return features, jacobian.permute(3, 0, 2, 1).reshape(n, 3, self.output_dim)
