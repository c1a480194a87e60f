"""Procedural synthetic indoor scenes in the Panoptic Lifting layout, with exact ground truth and
Mask2Former-like, view-inconsistent machine labels.

    from clusteringsdf.data.synthetic import generate_scene
    info = generate_scene(Path("scenes/synth_room"), preset="room", seed=0, noise="medium")

Modules: :mod:`.geometry` (primitives, exact ray casting), :mod:`.shading`
(procedural textures, lights), :mod:`.room` (procedural layout, world frame), :mod:`.camera_path`
(handheld-like trajectory), :mod:`.machine_labels` (the documented noise model), the
class-agnostic kinds of masks :mod:`.sam_masks` and :mod:`.fragments` (chosen in :mod:`.mask_kinds`)
and :mod:`.generator` (orchestration and writing).
"""

from .generator import GENERATOR_VERSION, PRESETS, SyntheticObject, SyntheticSceneInfo, generate_scene
from .machine_labels import CONFUSIONS, NOISE_LEVELS, NoiseParams
from .mask_kinds import MASK_KINDS
from .sam_masks import SAM_LEVELS, SamParams

__all__ = [
    "CONFUSIONS",
    "GENERATOR_VERSION",
    "MASK_KINDS",
    "NOISE_LEVELS",
    "NoiseParams",
    "PRESETS",
    "SAM_LEVELS",
    "SamParams",
    "SyntheticObject",
    "SyntheticSceneInfo",
    "generate_scene",
]
