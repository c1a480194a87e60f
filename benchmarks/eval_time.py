"""Where the time of ``train --eval`` goes, on a trained run: rendering and scoring the test views,
meshing and scoring the meshes, the report. Prints the figures as JSON.

Runs what ``train --eval`` runs after training, in the same order and with the run's settings, into
a scratch folder (the run's own eval/, meshes/ and report are left as they are). Run it alone: the
figures are wall-clock seconds.

    python benchmarks/eval_time.py --run RUN [--set sampler.eval_fine_samples=4 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from clusteringsdf.inference.evaluate_run import evaluate_run, score_geometry
from clusteringsdf.inference.report import build_report
from clusteringsdf.runs import load_trained_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run of a scene with ground truth")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="inference or sampler settings to try instead of the run's")
    args = parser.parse_args()
    device = torch.device("cpu")
    start = time.perf_counter()
    trained = load_trained_run(Path(args.run), device)
    if args.set:
        trained.config = trained.config.with_text_values(args.set)
        if hasattr(trained.model.eval_sampler, "config"):  # the grid sampler (the default) reads its sample counts there
            trained.model.eval_sampler.config = trained.config.sampler
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "run"
        shutil.copytree(args.run, copy, ignore=shutil.ignore_patterns("eval*", "meshes*", "report*", "render*"))
        trained.run_dir = copy
        scores = evaluate_run(copy, device, trained=trained, progress=False, mesh_resolution=0)
        scored = time.perf_counter()
        geometry = score_geometry(trained, copy / "meshes", trained.config.inference.eval_mesh_resolution)
        meshed = time.perf_counter()
        build_report(copy, device, progress=False)
        reported = time.perf_counter()
    print(json.dumps({
        "run": args.run,
        "settings": args.set,
        "render_s": scores["render_seconds"],
        "score_views_s": round(scored - loaded - scores["render_seconds"], 1),
        "mesh_and_score_s": round(meshed - scored, 1),
        "report_s": round(reported - meshed, 1),
        "in_all_s": round(reported - loaded, 1),
        "load_s": round(loaded - start, 1),
        "pq": round(scores["pq"], 4),
        "pq_things": round(scores["pq_things"], 4),
        "miou": round(scores["miou"], 4),
        "psnr": round(scores["psnr"], 2),
        "scene_fscore": round(geometry["scene"]["fscore"], 4),
        "mean_object_fscore": round(geometry["objects"]["mean_fscore"], 4),
    }, indent=2))


if __name__ == "__main__":
    main()
