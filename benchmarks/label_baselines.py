"""Scores of the label maps themselves on the synthetic room at each machine-label noise level.

* ground truth as predictions (``rs_*`` copied to ``pred_*``): must give PQ = SQ = RQ = mIoU = 1;
* the raw machine labels (``eval --use-machine-labels``): the 2D baseline every method must beat.

Writes benchmarks/out/results/label_baselines.json and prints it.

    python benchmarks/label_baselines.py [--noise low medium high]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from clusteringsdf.evaluation import evaluate_predictions

from _common import OUT, ensure_scene

KEYS = ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "ea")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", nargs="+", default=["low", "medium", "high"])
    args = parser.parse_args()
    results = {}
    for noise in args.noise:
        scene = ensure_scene("room", 0, noise)
        with tempfile.TemporaryDirectory() as tmp:
            pred = Path(tmp)
            shutil.copytree(scene / "rs_semantics", pred / "pred_semantics")
            shutil.copytree(scene / "rs_instance", pred / "pred_instance")
            gt = evaluate_predictions(scene, pred)
        machine = evaluate_predictions(scene, scene, use_machine_labels=True)
        results[noise] = {
            "ground_truth_as_prediction": {k: gt[k] for k in KEYS},
            "machine_labels": {k: machine[k] for k in KEYS},
            "command": f"clusteringsdf synth scenes/room_{noise} --preset room --noise {noise} && "
            f"clusteringsdf eval --scene scenes/room_{noise} --pred scenes/room_{noise} --use-machine-labels",
        }
    path = OUT / "results" / "label_baselines.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
