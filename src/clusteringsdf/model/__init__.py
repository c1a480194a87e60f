"""The field (hash grid + SDF/colour/semantic heads), density, ray samplers and volume rendering."""

from .field import GeometryOutput, SDFField, map_chunks
from .model import Model
from .outputs import RenderOutput, RenderRequest

__all__ = ["GeometryOutput", "Model", "RenderOutput", "RenderRequest", "SDFField", "map_chunks"]
