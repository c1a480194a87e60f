"""Hash grid: values against a direct smoothstep-trilinear reference, Jacobian against finite
differences and autograd, table gradients of both outputs, zero features outside the box."""

import torch

from clusteringsdf.model.hashgrid import HashGrid


def reference_encoding(grid: HashGrid, points: torch.Tensor) -> torch.Tensor:
    """Loop-free but independent implementation: explicit corner loop, explicit hash."""
    table = grid.table
    bbox = grid.bbox
    out = []
    offset = 0
    for level, res in enumerate(grid.resolutions):
        size = min((res + 1) ** 3, 2 ** int(torch.log2(torch.tensor(float(grid._hash_mask + 1)))))
        unit = ((points - bbox[0]) / (bbox[1] - bbox[0])).clamp(0, 1)
        pos = unit * res
        cell = pos.floor().long().clamp(max=res - 1)
        frac = pos - cell
        s = frac * frac * (3 - 2 * frac)
        feat = torch.zeros(points.shape[0], table.shape[1], dtype=table.dtype)
        for bx in (0, 1):
            for by in (0, 1):
                for bz in (0, 1):
                    c = cell + torch.tensor([bx, by, bz])
                    if (res + 1) ** 3 <= size:
                        index = c[:, 0] + (res + 1) * (c[:, 1] + (res + 1) * c[:, 2])
                    else:
                        index = ((c[:, 0] * 1) ^ (c[:, 1] * 2654435761) ^ (c[:, 2] * 805459861)) % size
                    w = (s[:, 0] if bx else 1 - s[:, 0]) * (s[:, 1] if by else 1 - s[:, 1]) * (s[:, 2] if bz else 1 - s[:, 2])
                    feat = feat + w.unsqueeze(-1) * table[offset + index]
        out.append(feat)
        offset += size
    return torch.cat(out, dim=-1)


def make_grid() -> HashGrid:
    torch.manual_seed(0)
    bbox = torch.tensor([[-1.0, -0.5, -0.8], [1.0, 0.7, 0.6]])
    grid = HashGrid(bbox, levels=4, features_per_level=2, log2_table_size=9, base_resolution=3, finest_resolution=24, init_scale=1.0)
    return grid.double()


def test_values_match_reference():
    grid = make_grid()
    points = torch.rand(200, 3, dtype=torch.float64) * (grid.bbox[1] - grid.bbox[0]) + grid.bbox[0]
    features, _ = grid(points)
    assert torch.allclose(features, reference_encoding(grid, points), atol=1e-12)
    assert grid._num_dense >= 1 and grid._num_dense < grid.levels  # both dense and hashed levels tested


def test_jacobian_matches_finite_differences_and_autograd():
    grid = make_grid()
    points = torch.rand(64, 3, dtype=torch.float64) * (grid.bbox[1] - grid.bbox[0]) * 0.9 + grid.bbox[0] * 0.9
    features, jacobian = grid(points, with_jacobian=True)
    eps = 1e-6
    for axis in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[axis] = eps
        numeric = (grid(points + step)[0] - grid(points - step)[0]) / (2 * eps)
        assert torch.allclose(numeric, jacobian[:, axis], atol=1e-3, rtol=1e-4)
    leaf = points.clone().requires_grad_(True)
    ref = reference_encoding(grid, leaf)
    for k in range(ref.shape[1]):
        (g,) = torch.autograd.grad(ref[:, k].sum(), leaf, retain_graph=True)
        assert torch.allclose(g, jacobian[:, :, k], atol=1e-9)


def test_table_gradient_of_features_and_jacobian():
    grid = make_grid()
    points = torch.rand(50, 3, dtype=torch.float64) * (grid.bbox[1] - grid.bbox[0]) * 0.9 + grid.bbox[0] * 0.9
    weights_f = torch.randn(50, grid.output_dim, dtype=torch.float64)
    weights_j = torch.randn(50, 3, grid.output_dim, dtype=torch.float64)
    features, jacobian = grid(points, with_jacobian=True)
    ((features * weights_f).sum() + (jacobian * weights_j).sum()).backward()
    ours = grid.table.grad.clone()
    grid.table.grad = None
    leaf = points.clone().requires_grad_(True)
    ref = reference_encoding(grid, leaf)
    ref_jac = torch.stack([torch.autograd.grad(ref[:, k].sum(), leaf, create_graph=True)[0] for k in range(ref.shape[1])], -1)
    ((ref * weights_f).sum() + (ref_jac * weights_j).sum()).backward()
    assert torch.allclose(ours, grid.table.grad, atol=1e-9)


def test_points_outside_the_box_encode_to_zero():
    grid = make_grid()
    outside = torch.tensor([[1.5, 0.0, 0.0], [0.0, -0.9, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    features, jacobian = grid(outside, with_jacobian=True)
    assert torch.count_nonzero(features) == 0
    assert torch.count_nonzero(jacobian) == 0
    features.sum().backward()
    assert torch.count_nonzero(grid.table.grad) == 0


def test_the_frozen_table_copy_follows_every_change_of_the_table():
    """In eval mode without autograd the grid keeps one transposed copy of its table; encodings equal
    the training path's, and a step taken in training mode (fused Adam does not bump the table's
    version counter) or weights loaded in eval mode are seen at once."""
    torch.manual_seed(0)
    grid = HashGrid(torch.tensor([[-1.0] * 3, [1.0] * 3]), levels=4, log2_table_size=10, base_resolution=4, finest_resolution=32, init_scale=1.0)
    points = torch.rand(500, 3) * 2 - 1
    reference = grid(points)[0].detach()
    grid.eval()
    with torch.no_grad():
        assert torch.equal(grid(points)[0], reference)
    grid.train()
    optimiser = torch.optim.Adam(grid.parameters(), lr=0.1, fused=True)
    grid(points)[0].square().sum().backward()
    optimiser.step()
    stepped = grid(points)[0].detach()
    assert not torch.equal(stepped, reference)
    grid.eval()
    with torch.no_grad():
        assert torch.equal(grid(points)[0], stepped)
        grid.load_state_dict({**grid.state_dict(), "table": torch.zeros_like(grid.table)})
        assert grid(points)[0].abs().max() == 0
