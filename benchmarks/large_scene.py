"""The Replica-size synthetic scene (``synth --preset large``: 640x480, 300 frames, 40+ things) with the
``cpu`` preset: peak memory, seconds per iteration and PQ of things after a fixed training budget,
for several channel counts; plus the time to ``info`` and to the first training step.

Each training runs as its own process under ``/usr/bin/time -v`` (peak RSS of the whole run, scoring
included) and is planned for ``--budget`` seconds of training from a probe of its pace. The small
room's pace (same preset, same probe) is measured alongside for the per-iteration comparison.

    python benchmarks/large_scene.py [--budget 1800] [--channels 32 64] [--eval-every 5] [--name large_scene]

Writes benchmarks/out/results/<name>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, ensure_scene
from train_speed import measure

PROBE = r"""
import sys, time
start = time.perf_counter()
import torch
torch.set_num_threads(2)
from pathlib import Path
from clusteringsdf.config import preset
from clusteringsdf.training.trainer import Trainer
config = preset("cpu").with_values({"field.channels": int(sys.argv[3])})
trainer = Trainer(config, Path(sys.argv[1]), Path(sys.argv[2]), torch.device("cpu"), progress=False)
ready = time.perf_counter() - start
trainer.step()
print(ready, time.perf_counter() - start)
"""


def timed(command: list[str], log: Path) -> tuple[int, float, float]:
    """Run under /usr/bin/time -v: (exit code, wall seconds, peak RSS GiB)."""
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(["/usr/bin/time", "-v", *command], stdout=handle, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    text = log.read_text()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return code, seconds, (int(match.group(1)) / 2**20) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1800.0, help="training seconds per run")
    parser.add_argument("--channels", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--name", default="large_scene")
    parser.add_argument("--eval-every", type=int, default=5, help="score every k-th test view (75 at 640x480 take ~20 min to render)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    results_path = OUT / "results" / f"{args.name}.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    large = ensure_scene("large", 0, "medium")
    room = ensure_scene("room", 0, "medium")
    results["scene"] = str(large)
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    code, seconds, rss = timed([sys.executable, "-m", "clusteringsdf.cli", "info", str(large)], logs / f"{args.name}_info.log")
    results["info"] = {"exit_code": code, "seconds": round(seconds, 1), "peak_rss_gib": round(rss, 2)}
    probe_run = OUT / "runs" / f"{args.name}_first_step"
    subprocess.run(["rm", "-rf", str(probe_run)], check=True)
    done = subprocess.run([sys.executable, "-c", PROBE, str(large), str(probe_run), "32"], capture_output=True, text=True, env=env)
    ready, first = (float(v) for v in done.stdout.split())
    results["first_step"] = {"seconds_to_trainer": round(ready, 1), "seconds_to_first_step": round(first, 1)}
    print(json.dumps({"info": results["info"], "first_step": results["first_step"]}), file=sys.stderr, flush=True)

    pace = {"room": measure("cpu", room, 50, 10, {"mode": "panoptic", "data.labels": "m2f"})["seconds_per_iteration"]}
    rows = results.setdefault("runs", {})
    for channels in args.channels:
        key = str(channels)
        if key in rows and rows[key].get("exit_code") == 0:
            continue
        probe = measure("cpu", large, 50, 10, {"mode": "panoptic", "data.labels": "m2f", "field.channels": channels})
        pace[f"large_{channels}"] = probe["seconds_per_iteration"]
        iterations = max(100, int(args.budget / probe["seconds_per_iteration"]) // 50 * 50)
        run = OUT / "runs" / f"{args.name}_c{channels}"
        command = [sys.executable, "-m", "clusteringsdf.cli", "train", "--data", str(large), "--out", str(run), "--preset", "cpu",
                   "--channels", str(channels), "--iters", str(iterations), "--threads", "2", "--eval", "--quiet",
                   "--set", f"inference.eval_every={args.eval_every}"]
        if run.exists():
            command.append("--resume")
        print(f"[{channels} channels] {iterations} iterations", file=sys.stderr, flush=True)
        code, seconds, rss = timed(command, logs / f"{args.name}_c{channels}.log")
        row = {"exit_code": code, "iterations": iterations, "wall_seconds": round(seconds, 1), "peak_rss_gib": round(rss, 2)}
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()] if (run / "metrics.jsonl").is_file() else []
        if records:
            row["train_seconds"] = records[-1]["seconds"]
            row["seconds_per_iteration"] = round(records[-1]["seconds"] / records[-1]["iteration"], 4)
        scores_path = run / "eval" / "metrics.json"
        if scores_path.is_file():
            scores = json.loads(scores_path.read_text())
            row.update({k: scores.get(k) for k in ("frames", "eval_every", "pq", "pq_things", "pq_stuff", "rq_things", "sq_things", "miou", "psnr", "depth_abs_rel", "render_seconds", "channels")})
        rows[key] = row
        results["probe_seconds_per_iteration"] = pace
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({key: row}), file=sys.stderr, flush=True)
    results["probe_seconds_per_iteration"] = pace
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
