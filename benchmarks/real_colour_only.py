"""A real colour-only capture end to end: ViSP's castle without its depth.

The 30 grey 640x480 frames of ViSP's castle (`apt-get install visp-images-data`; converted as in
`real_castel.py`, the depth left out) go through `prepare` (structure-from-motion poses with the
known intrinsics, `classical` masks, every 5th frame held out) and `train --eval` (instance mode).
Printed, and written to benchmarks/out/real_colour_only_<box>.json: frames posed, the seconds of
each step, the PSNR of the held-out frames, the training's warnings, and the scene box's size.

``--box points`` (the default) trains as `prepare` leaves the scene: its box drawn around the SfM
points (`points3d.ply`). ``--box frusta`` deletes that file first, so the box is drawn around the
cameras' frusta up to 5 units, as scenes without depth were before the points were kept.

    python benchmarks/real_colour_only.py [--box points|frusta] [--iters N] [--schedule cpu|short]

``--schedule short`` trains as `clusteringsdf demo` does (4x the learning rate, the grid's 2x).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from _common import OUT
from real_castel import TEST_EVERY, cli, write_capture

SHORT_SCHEDULE = ["--lr", "0.002", "--set", "train.grid_lr_factor=10"]


def prepare_colour_only(capture: Path, scene: Path, width: int, log: Path) -> None:
    cli("prepare", "--images", str(capture / "images"), "--out", str(scene), "--intrinsics", str(capture / "K_color.txt"),
        "--poses", "sfm", "--segmenter", "classical", "--test-every", str(TEST_EVERY), "--max-size", str(width), "--threads", "2",
        log=log)


def warnings_of(run: Path) -> list[str]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [entry["warning"] for entry in map(json.loads, lines) if "warning" in entry]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", choices=("points", "frusta"), default="points", help="scene box (default: points)")
    parser.add_argument("--iters", type=int, default=1000, help="training iterations (default: 1000)")
    parser.add_argument("--schedule", choices=("cpu", "short"), default="short", help="learning-rate schedule (default: short)")
    parser.add_argument("--downscale", type=float, default=2.0, help="train at this fraction of 640x480 (default: 2)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="more training settings")
    parser.add_argument("--name", default="", help="suffix of the run folder and the JSON file")
    args = parser.parse_args()

    folder = OUT / "real_colour_only"
    capture, scene, log = folder / "capture", folder / "scene", folder / "log.txt"
    timings: dict[str, float] = {}
    if not (scene / "splits.json").is_file():  # the prepared scene is shared by both boxes
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_capture(capture, list(range(30)), 640)
        start = time.perf_counter()
        prepare_colour_only(capture, scene, 640, log)
        timings["prepare"] = round(time.perf_counter() - start, 1)
    trained_scene = scene
    if args.box == "frusta":
        trained_scene = folder / "scene_frusta"
        shutil.rmtree(trained_scene, ignore_errors=True)
        shutil.copytree(scene, trained_scene)
        (trained_scene / "points3d.ply").unlink(missing_ok=True)
    run = folder / f"run_{args.box}_{args.schedule}_{args.iters}{args.name}"
    start = time.perf_counter()
    cli("train", "--data", str(trained_scene), "--out", str(run), "--preset", "cpu", "--mode", "instance", "--iters", str(args.iters),
        "--downscale", str(args.downscale), "--eval", "--force", "--quiet", *(SHORT_SCHEDULE if args.schedule == "short" else []),
        *[item for setting in args.set for item in ("--set", setting)], log=log)
    timings["train_and_eval"] = round(time.perf_counter() - start, 1)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    prepared = json.loads((scene / "prepare.json").read_text())
    result = {
        "box": args.box, "schedule": args.schedule, "set": args.set, "iterations": args.iters, "downscale": args.downscale,
        "frames_posed": prepared["poses"]["registered"], "frames": 30, "test_frames": metrics.get("frames"),
        "psnr_test": metrics.get("psnr"), "depth_consistency": metrics.get("depth_consistency"),
        "warnings": warnings_of(run), "timings_s": timings, "run": str(run),
    }
    text = json.dumps(result, indent=1)
    (OUT / f"real_colour_only_{args.box}{args.name}.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
