"""How the panoptic fusion's minimum segment size changes the scores of trained runs.

Each run's test views are rendered once; the labels are then fused with every
``inference.min_segment_fraction`` in the list (thing channels under that share of all rendered
pixels are fragments: their pixels go to their second-best channel) and scored. Prints JSON and
writes benchmarks/out/results/fragment_threshold.json.

    python benchmarks/fragment_threshold.py RUN [RUN ...] [--fractions 0 1e-4 2e-4 5e-4 1e-3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from _common import OUT
from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.inference.evaluate_run import label_cameras
from clusteringsdf.inference.render import write_views
from clusteringsdf.runs import load_run_identity, load_trained_run

KEYS = ("pq", "pq_things", "pq_stuff", "rq_things", "miou")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.0, 1e-4, 2e-4, 5e-4, 1e-3])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for run in args.runs:
        trained = load_trained_run(run, torch.device("cpu"))
        scene = trained.scene
        frames = scene.split("test")
        views, _, _ = label_cameras(trained, scene.poses[frames], scene.intrinsics[frames], progress=False, normals=False)
        names = [scene.frame_names[i] for i in frames]
        scene_dir = Path(load_run_identity(run)["scene"])
        rows = {}
        for fraction in args.fractions:
            semantics, instances = trained.method.fuse_labels(views, scene.classes.thing_classes, fraction)
            with tempfile.TemporaryDirectory() as tmp:
                write_views(Path(tmp), names, views, semantics, instances=instances, scale=scene.normalization.scale)
                scores = evaluate_predictions(scene_dir, Path(tmp), protocol="native", split="test")
            rows[str(fraction)] = {k: round(scores[k], 4) for k in KEYS}
        results[run.name] = rows
        print(json.dumps({run.name: rows}), flush=True)
    path = OUT / "results" / "fragment_threshold.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
