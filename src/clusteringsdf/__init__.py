"""ClusteringSDF: object-compositional neural SDFs that fuse view-inconsistent 2D masks into a
3D-consistent panoptic segmentation, with sphere-guided training."""

__version__ = "0.1.0"
