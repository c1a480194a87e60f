"""Forward-mode jets and the field's analytic Jacobian against autograd, in float64.

The eikonal and smoothness terms and every rendered normal use these Jacobians, never autograd's
double backward, so they must be exact: each building block (positional encoding, weight-normalised
linear layers over several input blocks, softplus) and the whole SDF field are compared with
``torch.autograd`` on the same float64 inputs. The hash grid has no gradient with respect to its input
points (by design), so for the whole field it is replaced by an independent, differentiable
reference encoding with the same table (tests/model/test_hashgrid.py checks the two agree).
"""

import pytest
import torch
from test_hashgrid import reference_encoding

from clusteringsdf.config import FieldConfig
from clusteringsdf.losses.geometry import eikonal, smoothness
from clusteringsdf.model.field import SDFField
from clusteringsdf.model.jets import Jet, WeightNormLinear, positional_encoding, softplus_jet


def autograd_jacobian(function, points: torch.Tensor) -> torch.Tensor:
    """(N, 3, D) d function(points)[n, d] / d points[n, a] by autograd (rows are independent)."""
    leaf = points.clone().requires_grad_(True)
    value = function(leaf)
    columns = [torch.autograd.grad(value[:, d].sum(), leaf, retain_graph=True)[0] for d in range(value.shape[1])]
    return torch.stack(columns, dim=-1)


def test_positional_encoding_jacobian():
    points = torch.rand(40, 3, dtype=torch.float64) * 2 - 1
    jet = positional_encoding(points, 5, with_jacobian=True)
    assert jet.value.shape == (40, 3 + 30) and jet.tangent.shape == (40, 3, 33)
    expected = autograd_jacobian(lambda p: positional_encoding(p, 5).value, points)
    assert torch.allclose(jet.tangent, expected, atol=1e-12)


def test_linear_jet_over_several_blocks_then_softplus():
    torch.manual_seed(0)
    points = torch.rand(30, 3, dtype=torch.float64) * 2 - 1
    layer = WeightNormLinear(3 + 12 + 3 + 18, 7).double()

    def blocks(p: torch.Tensor, with_jacobian: bool) -> list[Jet]:
        return [positional_encoding(p, 2, with_jacobian), positional_encoding(p, 3, with_jacobian)]

    def forward(p: torch.Tensor, with_jacobian: bool) -> Jet:
        return softplus_jet(layer.jet(blocks(p, with_jacobian)), beta=10.0)

    jet = forward(points, True)
    plain = forward(points, False)
    assert plain.tangent is None
    assert torch.allclose(jet.value, plain.value)
    # the block split gives the layer applied to the concatenation
    concatenated = torch.cat([b.value for b in blocks(points, False)], dim=-1)
    assert torch.allclose(jet.value, torch.nn.functional.softplus(layer(concatenated), beta=10.0), atol=1e-12)
    expected = autograd_jacobian(lambda p: forward(p, False).value, points)
    assert torch.allclose(jet.tangent, expected, atol=1e-10)


def _field() -> SDFField:
    torch.manual_seed(0)
    config = FieldConfig(channels=4, grid_levels=3, grid_log2_size=10, grid_base_resolution=4, grid_finest_resolution=16,
                         hidden_dim=16, hidden_layers=2, feature_dim=8, pe_frequencies=3)
    field = SDFField(config, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), num_classes=3).double()
    with torch.no_grad():  # a trained-looking grid: table entries of the size they reach in training
        field.grid.table.uniform_(-0.3, 0.3)
    return field


def test_field_jacobian_matches_autograd():
    field = _field()
    points = torch.rand(64, 3, dtype=torch.float64) * 1.8 - 0.9
    analytic = field.geometry(points, with_jacobian=True)
    assert analytic.jacobian.shape == (64, 3, 4)

    def with_reference_grid(p: torch.Tensor) -> torch.Tensor:
        original = field.grid.forward
        field.grid.forward = lambda q, with_jacobian=False: (reference_encoding(field.grid, q), None)
        try:
            return field.geometry(p).sdf
        finally:
            field.grid.forward = original

    assert torch.allclose(with_reference_grid(points), analytic.sdf, atol=1e-12)
    expected = autograd_jacobian(with_reference_grid, points)
    assert torch.allclose(analytic.jacobian, expected, atol=1e-9)
    # the scene gradient is the arg-min channel's
    index = analytic.sdf.argmin(-1)
    assert torch.allclose(analytic.scene_gradient(), expected[torch.arange(64), :, index], atol=1e-9)


def test_field_jacobian_matches_finite_differences():
    field = _field()
    points = torch.rand(32, 3, dtype=torch.float64) * 1.8 - 0.9
    jacobian = field.geometry(points, with_jacobian=True).jacobian
    eps = 1e-6
    for axis in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[axis] = eps
        numeric = (field.geometry(points + step).sdf - field.geometry(points - step).sdf) / (2 * eps)
        assert torch.allclose(numeric, jacobian[:, axis], atol=1e-5, rtol=1e-5)


def test_eikonal_and_smoothness_on_known_gradients():
    unit = torch.nn.functional.normalize(torch.randn(10, 3, 2, dtype=torch.float64), dim=1)
    assert eikonal(unit).item() == pytest.approx(0.0, abs=1e-12)
    assert eikonal(2 * unit).item() == pytest.approx(1.0)  # (|2 n| - 1)^2 = 1
    assert smoothness(unit, 3 * unit).item() == pytest.approx(0.0, abs=1e-4)  # same direction, any length (1e-5 in the norm)
    flipped = smoothness(unit, -unit).item()
    assert flipped == pytest.approx(2.0, abs=1e-4)  # |n - (-n)| = 2
