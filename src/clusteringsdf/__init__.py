"""ClusteringSDF: object-compositional neural SDFs that fuse view-inconsistent 2D masks into a
3D-consistent panoptic segmentation, with sphere-guided training.

``clusteringsdf.load_run(path)`` opens a trained run for queries (:mod:`clusteringsdf.api`).
"""

__version__ = "0.1.0"

__all__ = ["Run", "load_run", "__version__"]


def __getattr__(name: str):
    """``load_run`` and ``Run`` are imported on first use, so the command line starts without torch."""
    if name in ("load_run", "Run"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'clusteringsdf' has no attribute {name!r}")
