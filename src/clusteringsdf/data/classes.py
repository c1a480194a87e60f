"""The reduced ScanNet class list used by Panoptic Lifting, Contrastive Lift and ClusteringSDF for
ScanNet, Replica and Hypersim (21 classes + void). Scenes carry their own thing/stuff split in
``segmentation_data.pkl``; this table only supplies names and the default split for scenes we write.
"""

from __future__ import annotations

REDUCED_SCANNET_CLASSES: dict[int, str] = {
    0: "void",
    1: "wall",
    2: "floor",
    3: "cabinet",
    4: "bed",
    5: "chair",
    6: "sofa",
    7: "table",
    8: "door",
    9: "window",
    10: "counter",
    11: "shelves",
    12: "curtain",
    13: "ceiling",
    14: "refrigerator",
    15: "television",
    16: "person",
    17: "toilet",
    18: "sink",
    19: "lamp",
    20: "bag",
    21: "otherprop",
}
NUM_CLASSES = len(REDUCED_SCANNET_CLASSES)  # 22, class 0 = void
THING_CLASSES: tuple[int, ...] = (4, 5, 6, 14, 15, 16, 17, 18, 20)
STUFF_CLASSES: tuple[int, ...] = tuple(c for c in REDUCED_SCANNET_CLASSES if c not in THING_CLASSES)  # includes 0

# Scenes without classes (masks with instance ids only): every instance is an "object" (thing), the
# rest "background" (stuff), 0 = a pixel the segmenter left unlabelled.
AGNOSTIC_UNLABELLED, AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT = 0, 1, 2


def class_agnostic_data() -> dict:
    """``segmentation_data.pkl`` of a scene without classes (the contract training and rendering read)."""
    return {
        "fg_classes": [AGNOSTIC_OBJECT],
        "bg_classes": [AGNOSTIC_BACKGROUND],
        "num_semantic_classes": 3,
        "class_names": {AGNOSTIC_UNLABELLED: "void", AGNOSTIC_BACKGROUND: "background", AGNOSTIC_OBJECT: "object"},
        "class_agnostic": True,
    }


# The classes of the ground truth of a class-agnostic scene whose ``rs_semantics`` keep their own
# classes (the synthetic generator's ``sam`` and ``fragments`` masks): these keys of
# ``segmentation_data.pkl``, each with the meaning of the key it is named after.
GROUND_TRUTH_CLASS_KEYS = ("rs_fg_classes", "rs_bg_classes", "rs_num_semantic_classes", "rs_class_names")


def ground_truth_class_data(data: dict) -> dict:
    """The class keys that describe ``rs_semantics``: the ``rs_*`` ones of
    :data:`GROUND_TRUTH_CLASS_KEYS` without their prefix where the scene has them, else ``data``."""
    if GROUND_TRUTH_CLASS_KEYS[0] not in data:
        return data
    return {key.removeprefix("rs_"): data[key] for key in GROUND_TRUTH_CLASS_KEYS if key in data}
