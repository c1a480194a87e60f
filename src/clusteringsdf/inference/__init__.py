"""Inference: rendering label maps and images of trained runs, panoptic fusion, meshes, videos."""
