"""The field (hash grid + SDF/colour/semantic heads), density, ray samplers and volume rendering."""

from .field import GeometryOutput, SDFField
from .renderer import RenderRequest, Renderer

__all__ = ["GeometryOutput", "SDFField", "RenderRequest", "Renderer"]
