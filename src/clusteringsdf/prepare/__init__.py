"""From a capture to a scene: ``clusteringsdf prepare``.

Modules: :mod:`.frames` (images / video, sharpness), :mod:`.depth` (sensor depth), :mod:`.colmap`
and :mod:`.colmap_worker` (pycolmap structure-from-motion in a child process), :mod:`.rgbd_odometry`
(Open3D RGB-D tracking), :mod:`.pose_import` (COLMAP, transforms.json, ScanNet), :mod:`.poses`
(which source, fall-back, scale), :mod:`.segmenters` (classical, Mask2Former, SAM),
:mod:`.mask_import`, :mod:`.writer` (temporary folder, atomic move), :mod:`.pipeline` (the whole
command) and :mod:`.alignment` (scoring poses against known ones).
"""

from .pipeline import PrepareOptions, PrepareResult, prepare_scene

__all__ = ["PrepareOptions", "PrepareResult", "prepare_scene"]
