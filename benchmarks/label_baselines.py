"""Scores of the label maps themselves on the synthetic room at each machine-label noise level.

* ground truth as predictions (``rs_*`` copied to ``pred_*``): must give PQ = SQ = RQ = mIoU = 1;
* the raw machine labels (``eval --use-machine-labels``): the 2D baseline every method must beat
  (class-agnostic for the ``sam`` and ``fragments`` masks). Their ids change from view to view, so
  their scene-level thing PQ is 0;
* ``machine_labels_2d``: each frame's machine instances against that frame's thing instances,
  class-agnostic (things = GT thing instances, GT void left out; matched per frame, summed over the
  test frames): how good the masks are as 2D masks.

Results are keyed by noise level for the default ``m2f`` masks and ``<masks>/<noise>`` for the others.
Writes benchmarks/out/results/label_baselines.json and prints it.

    python benchmarks/label_baselines.py [--noise low medium high] [--masks m2f sam fragments]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from clusteringsdf.data import layout
from clusteringsdf.data.classes import THING_CLASSES
from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.evaluation.panoptic import PanopticAccumulator

from _common import OUT, ensure_scene

KEYS = ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "ea")
FRAME_IDS = 1 << 16  # instance ids made unique per frame: frame index * FRAME_IDS + id


def per_frame_things(scene: Path) -> dict:
    """Class-agnostic thing PQ/SQ/RQ of each test frame's machine instances against its thing
    instances, matched per frame and summed over the frames (GT void left out)."""
    accumulator = PanopticAccumulator()
    for index, name in enumerate(layout.read_splits(scene / layout.SPLITS_FILE)["test"]):
        gt_sem, gt_ins = (layout.read_label(scene / folder / f"{name}.png") for folder in ("rs_semantics", "rs_instance"))
        pred_ins = layout.read_label(scene / "m2f_instance" / f"{name}.png")
        gt_object = np.isin(gt_sem, THING_CLASSES) & (gt_ins > 0)
        valid = gt_sem > 0
        offset = index * FRAME_IDS
        accumulator.update(np.where(pred_ins > 0, 2, 1)[valid], np.where(pred_ins > 0, pred_ins + offset, 0)[valid],
                           np.where(gt_object, 2, 1)[valid], np.where(gt_object, gt_ins + offset, 0)[valid])
    result = accumulator.compute({2}, {1})
    counts = result.per_class.get(2, {})
    return {"pq_things": result.pq_things, "sq_things": result.sq_things, "rq_things": result.rq_things,
            **{key: counts.get(key) for key in ("tp", "fp", "fn")}}


def scores(masks: str, noise: str) -> dict:
    """The scores of the room's label maps with these masks at this noise level."""
    scene = ensure_scene("room", 0, noise, masks=masks)
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp)
        shutil.copytree(scene / "rs_semantics", pred / "pred_semantics")
        shutil.copytree(scene / "rs_instance", pred / "pred_instance")
        gt = evaluate_predictions(scene, pred)
    machine = evaluate_predictions(scene, scene, use_machine_labels=True)
    folder = f"scenes/room_{noise}" + ("" if masks == "m2f" else f"_{masks}")
    return {
        "ground_truth_as_prediction": {k: gt[k] for k in KEYS},
        "machine_labels": {k: machine[k] for k in KEYS},
        "class_agnostic": machine["class_agnostic"],
        "machine_labels_2d": per_frame_things(scene),
        "command": f"clusteringsdf synth {folder} --preset room --noise {noise}" + ("" if masks == "m2f" else f" --masks {masks}")
        + f" && clusteringsdf eval --scene {folder} --pred {folder} --use-machine-labels",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", nargs="+", default=["low", "medium", "high"])
    parser.add_argument("--masks", nargs="+", default=["m2f"], choices=("m2f", "sam", "fragments"))
    args = parser.parse_args()
    results = {}
    for masks in args.masks:
        for noise in args.noise:
            results[noise if masks == "m2f" else f"{masks}/{noise}"] = scores(masks, noise)
    path = OUT / "results" / "label_baselines.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
