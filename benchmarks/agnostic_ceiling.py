"""The best score a class-agnostic run can reach on a synthetic scene under ``eval``'s
class-agnostic PQ, when its masks make objects of what the ground truth calls stuff.

Class-agnostic masks (SAM, superpixels, the ``classical`` segmenter, the generator's ``sam`` and
``fragments`` kinds) cut out tables, doors, pictures and rugs as objects; the reduced ScanNet classes
of the ground truth call them stuff, and the class-agnostic scorer counts every predicted object that
matches no GT thing as a false positive. This script scores two perfect predictions of the scene's
test views, built from its ground truth, with the same scorer as ``eval``:

* ``every_object``: every object its own id, consistent over views (GT things by instance, each stuff
  object other than walls, floor and ceiling by class): a flawless lifting of such masks;
* ``things_only``: the GT things alone, the rest background (the scorer's own bound, 1.0).

Prints one JSON object. No training.

    python benchmarks/agnostic_ceiling.py [--scene benchmarks/out/scenes/room_medium_fragments]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from clusteringsdf.data import layout
from clusteringsdf.data.synthetic.sam_masks import BACKGROUND_CLASSES
from clusteringsdf.evaluation import evaluate_predictions

from _common import ensure_scene

STUFF_OBJECT_IDS = 1000  # ids of stuff objects: this + their class (no GT thing has an id this high)
HEADLINE = ("pq", "pq_things", "rq_things", "sq_things", "pq_stuff")


def oracle_instances(gt_semantics: np.ndarray, gt_instance: np.ndarray, with_stuff_objects: bool) -> np.ndarray:
    """(H, W) predicted instance ids from a frame's GT (H, W) maps: GT things keep their ids; with
    ``with_stuff_objects`` every other labelled class outside walls, floor and ceiling is an object."""
    ids = np.where(gt_instance > 0, gt_instance, 0)
    if with_stuff_objects:
        stuff_object = (gt_instance == 0) & (gt_semantics > 0) & ~np.isin(gt_semantics, BACKGROUND_CLASSES)
        ids = np.where(stuff_object, STUFF_OBJECT_IDS + gt_semantics, ids)
    return ids


def score_oracle(scene: Path, with_stuff_objects: bool) -> dict:
    """The class-agnostic scores of the oracle prediction of ``scene``'s test views."""
    frames = json.loads((scene / layout.SPLITS_FILE).read_text())["test"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for folder in ("pred_semantics", "pred_instance"):
            (out / folder).mkdir()
        for name in frames:
            semantics = layout.read_label(scene / layout.FOLDERS["rs_semantics"] / f"{name}.png")
            instance = layout.read_label(scene / layout.FOLDERS["rs_instance"] / f"{name}.png")
            ids = oracle_instances(semantics, instance, with_stuff_objects)
            layout.write_label(out / "pred_instance" / f"{name}.png", ids.astype(np.uint16))
            layout.write_label(out / "pred_semantics" / f"{name}.png", np.where(ids > 0, 2, 1).astype(np.uint16))
        result = evaluate_predictions(scene, out, class_agnostic=True)
    return {key: round(result[key], 3) for key in HEADLINE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, help="a synthetic scene (default: the room with fragment masks, written if missing)")
    args = parser.parse_args()
    scene = args.scene or ensure_scene("room", 0, "medium", masks="fragments")
    print(json.dumps({"scene": str(scene), "every_object": score_oracle(scene, True), "things_only": score_oracle(scene, False)}, indent=2))


if __name__ == "__main__":
    main()
