"""ClusteringSDF results on the synthetic room (medium and high machine-label noise).

Every trained row is planned for the same training wall-clock budget: a probe measures the mode's
steady-state seconds per iteration and the run is given ``budget / seconds_per_iteration``
iterations (``train_seconds`` records what it took). Rows:

* raw machine labels (the 2D baseline, no training);
* ObjectSDF++ on view-consistent GT labels (the upper bound; identical for both noise levels);
* ObjectSDF++ on the raw machine labels (per-view random channel assignment);
* ClusteringSDF instance (Eq. 11), semantic (Eq. 10; ``semantic_ray``: plus our per-ray class
  term ``clustering.sem_ray``), panoptic two-run (instance + semantic run
  merged at render time) and panoptic single-run (instance clustering + semantic head);
* Contrastive Lift's slow-fast loss on the same backbone (mean-shift at inference);
* ablations (medium noise): instance mode without L_diff / L_onehot / L_reg / L_fg-bg /
  L_cross_view, each merged with the same semantic run (as in the paper's Table 2).

Runs live in benchmarks/out/runs/ and are reused when their scores exist. Results are written to
benchmarks/out/results/<name>.json (default ``clustering``; another name, e.g. for a longer budget,
also prefixes its run folders); ``benchmarks/write_results.py`` turns them into docs.

    python benchmarks/clustering_results.py [--budget 300] [--noise medium high] [--rows ...] [--name clustering]

``--iterations N`` trains every row for N iterations instead (4000 = the ``cpu`` preset's own, to
time the default run rather than a planned budget).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from clusteringsdf.config import SWITCHES, preset
from clusteringsdf.evaluation import evaluate_predictions
from clusteringsdf.inference.evaluate_run import evaluate_run
from clusteringsdf.training.trainer import Trainer

from _common import OUT, ensure_scene
from train_speed import measure

KEYS = ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "ea", "psnr", "depth_abs_rel")
CPU = torch.device("cpu")

TRAINED = {
    # name: (mode, labels, ablation flags)
    "objectsdf_gt": ("objectsdf", "gt", ()),
    "objectsdf_m2f": ("objectsdf", "m2f", ()),
    "semantic": ("semantic", "m2f", ()),  # before the rows that take their classes from it
    "semantic_ray": ("semantic", "m2f", ()),
    "instance": ("instance", "m2f", ()),
    "panoptic": ("panoptic", "m2f", ()),
    "contrastive": ("contrastive", "m2f", ()),
    "no_diff": ("instance", "m2f", ("diff",)),
    "no_onehot": ("instance", "m2f", ("onehot",)),
    "no_reg": ("instance", "m2f", ("reg",)),
    "no_fgbg": ("instance", "m2f", ("fgbg",)),
    "no_crossview": ("instance", "m2f", ("crossview",)),
}
SEM_RAY = {"semantic_ray": 0.5}  # clustering.sem_ray of a row (0 for every other row: the paper's Eq. 10)
MERGED_WITH_SEMANTIC = {"instance", "no_diff", "no_onehot", "no_reg", "no_fgbg", "no_crossview"}
ABLATIONS = ("no_diff", "no_onehot", "no_reg", "no_fgbg", "no_crossview")


def make_config(name: str, iterations: int):
    mode, labels, ablations = TRAINED[name]
    values = {"mode": mode, "data.labels": labels, "train.iterations": iterations, "clustering.sem_ray": SEM_RAY.get(name, 0.0)}
    for flag in ablations:  # an ablation sets the term's weights to 0
        values.update({key: 0.0 for key in SWITCHES[f"clustering.use_{flag}"]})
    return preset("cpu").with_values(values)


def seconds_per_iteration(mode: str, labels: str, scene: Path) -> float:
    """Steady-state probe (train_speed.measure: 50 steps half-way through a run)."""
    return measure("cpu", scene, 50, 10, {"mode": mode, "data.labels": labels})["seconds_per_iteration"]


def train(name: str, scene: Path, run: Path, iterations: int) -> dict:
    if (run / "done.json").is_file():
        return json.loads((run / "done.json").read_text())
    config = make_config(name, iterations)
    trainer = Trainer(config, scene, run, CPU, resume=run.exists(), progress=False)
    result = trainer.train()
    info = {"iterations": result.iterations, "train_seconds": round(result.seconds, 1)}
    (run / "done.json").write_text(json.dumps(info) + "\n")
    return info


def score(run: Path, scene: Path, semantic_run: Path | None = None, tag: str = "eval") -> dict:
    out = run / tag
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    return evaluate_run(run, CPU, progress=False, semantic_run=semantic_run, out_dir=out)


def pair_separated(scene: Path, pred: Path, pair: list[int]) -> dict:
    """Do the two GT instances that never share a view get different predicted instance ids?"""
    from clusteringsdf.data.scene import load_scene

    gt = load_scene(scene, components={"gt"})
    names = [gt.frame_names[i] for i in gt.split("test")]
    from clusteringsdf.data.layout import read_label

    majority = {}
    for gt_id in pair:
        votes: dict[int, int] = {}
        for frame, name in zip(gt.split("test"), names):
            mask = gt.gt_instance[frame] == gt_id
            if mask.any():
                ids, counts = np.unique(read_label(pred / "pred_instance" / f"{name}.png")[mask], return_counts=True)
                for i, c in zip(ids, counts):
                    votes[int(i)] = votes.get(int(i), 0) + int(c)
        majority[gt_id] = max(votes, key=votes.get) if votes else None
    a, b = (majority[i] for i in pair)
    return {"gt_pair": pair, "predicted_ids": [a, b], "separated": a is not None and b is not None and a != b and a > 0 and b > 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per run")
    parser.add_argument("--noise", nargs="+", default=["medium", "high"])
    parser.add_argument("--rows", nargs="+", default=list(TRAINED))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="clustering", help="results file and run-folder prefix")
    parser.add_argument("--iterations", type=int, default=None, help="train every row this long instead of planning from --budget")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results_path = OUT / "results" / f"{args.name}.json"
    prefix = "" if args.name == "clustering" else f"{args.name}_"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["budget_seconds"] = None if args.iterations else args.budget
    results["iterations"] = args.iterations
    speeds = results.setdefault("seconds_per_iteration", {})
    for noise in args.noise:
        scene = ensure_scene("room", 0, noise)
        info = json.loads((scene / "synthetic_info.json").read_text())
        table = results.setdefault(noise, {})
        machine = evaluate_predictions(scene, scene, use_machine_labels=True)
        table["machine_labels"] = {k: machine.get(k) for k in KEYS}
        for name in args.rows:
            if name in ABLATIONS and noise != "medium":
                continue
            if name == "objectsdf_gt" and noise != "medium":
                continue  # GT labels do not depend on the noise level
            mode, labels, _ = TRAINED[name]
            key = f"{mode}/{labels}"
            if not args.iterations and key not in speeds:
                speeds[key] = round(seconds_per_iteration(mode, labels, scene), 4)
            iterations = args.iterations or max(100, int(args.budget / speeds[key]) // 50 * 50)
            run = OUT / "runs" / f"{prefix}{noise}_{name}"
            print(f"[{noise}] {name}: {iterations} iterations", file=sys.stderr, flush=True)
            meta = train(name, scene, run, iterations)
            row = dict(meta)
            if name in MERGED_WITH_SEMANTIC:
                scores = score(run, scene, OUT / "runs" / f"{prefix}{noise}_semantic", tag="eval_with_semantic_run")
            else:
                scores = score(run, scene)
            row.update({k: scores.get(k) for k in KEYS})
            if name in ("instance", "panoptic", "no_crossview"):
                tag = "eval_with_semantic_run" if name in MERGED_WITH_SEMANTIC else "eval"
                row["never_covisible_pair"] = pair_separated(scene, run / tag, info["never_covisible_pair"]["instance_ids"])
            table["two_run" if name == "instance" else name] = row
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
