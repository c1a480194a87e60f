"""A real colour-only capture end to end: ViSP's castle without its depth.

The 30 grey 640x480 frames of ViSP's castle (`apt-get install visp-images-data`; converted as in
`real_castel.py`, the depth left out) go through `prepare` (structure-from-motion poses with the
known intrinsics, `classical` masks, every 5th frame held out) and `train --eval` (instance mode).
Printed, and written to benchmarks/out/real_colour_only_<depth>_<box><name>.json: frames posed, the
seconds of each step, the PSNR of the held-out frames, the training's warnings, and their rendered
depth (and the prepared depth) against the castle's sensor depth, which the run never sees
(reprojected into the colour camera; one scale for all frames takes the SfM unit to metres).

``--depth points`` (the default) trains as `prepare` leaves the scene: each frame's depth
interpolated from its SfM points. ``--depth none`` prepares with `--no-point-depth`: no depth, the
scene box drawn around the SfM points (``--box points``) or, with ``--box frusta``, around the
cameras' frusta up to 5 units.

    python benchmarks/real_colour_only.py [--depth points|none] [--box points|frusta] [--iters N] [--schedule cpu|short]
                                          [--figure docs/images/real_colour_only.jpg [--figure-only]]

``--schedule short`` (the default) trains as `clusteringsdf demo` does (learning rate 2e-3, the
grid's 2e-2); ``cpu`` as the preset ships.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import OUT
from real_castel import CASTEL, DEPTH_UNIT_M, TEST_EVERY, cli, read_depth_bin, read_visp_camera, write_capture

from clusteringsdf.data import layout
from clusteringsdf.prepare.depth import reproject_depth

SHORT_SCHEDULE = ["--lr", "0.002", "--set", "train.grid_lr_factor=10"]


def prepare_colour_only(capture: Path, scene: Path, width: int, log: Path, point_depth: bool) -> None:
    cli("prepare", "--images", str(capture / "images"), "--out", str(scene), "--intrinsics", str(capture / "K_color.txt"),
        "--poses", "sfm", "--segmenter", "classical", "--test-every", str(TEST_EVERY), "--max-size", str(width), "--threads", "2",
        *([] if point_depth else ["--no-point-depth"]), log=log)


def _resized(depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return depth if depth.shape == hw else np.asarray(Image.fromarray(depth).resize(hw[::-1], Image.NEAREST))


def sensor_depth(name: str) -> np.ndarray:
    """The castle's sensor depth (480, 640) in metres of frame ``name`` (``image_0005``), reprojected
    into the colour camera as `prepare --depth` does it (0 = missing)."""
    k_color, k_depth = read_visp_camera(CASTEL / "chateau.xml"), read_visp_camera(CASTEL / "chateau_depth.xml")
    raw = read_depth_bin(CASTEL / "castel" / f"depth_image_{name.split('_')[-1]}.bin").astype(np.float32) * DEPTH_UNIT_M
    return reproject_depth(raw, k_depth, np.linalg.inv(np.loadtxt(CASTEL / "depth_M_color.txt")), k_color, hw=(480, 640))


def sensor_depth_scores(scene: Path, run: Path) -> dict:
    """The held-out frames' rendered depth (and the scene's own depth, when it has some) against the
    castle's sensor depth reprojected into the colour camera, after one scale for all of them (SfM
    units -> metres, the median ratio): AbsRel and median absolute error (mm) over the pixels with
    sensor depth. The sensor depth is never seen by the colour-only run."""
    test = layout.read_splits(scene / layout.SPLITS_FILE)["test"]
    sensors, estimates = [], {"rendered": [], "prior": []}
    for name in test:
        sensor = sensor_depth(name)
        sensors.append(sensor)
        estimates["rendered"].append(_resized(layout.read_depth(run / "eval" / "depth" / f"{name}.png"), sensor.shape))
        prior = scene / "depth" / f"{name}.png"
        estimates["prior"].append(_resized(layout.read_depth(prior), sensor.shape) if prior.is_file() else np.zeros_like(sensor))
    sensor = np.stack(sensors)
    scores = {}
    for key, estimate in estimates.items():
        both = (sensor > 0) & (np.stack(estimate) > 0)
        if not both.any():
            continue
        truth, value = sensor[both], np.stack(estimate)[both]
        value = value * float(np.median(truth / value))
        scores[key] = {"abs_rel": round(float(np.mean(np.abs(value - truth) / truth)), 4),
                       "median_abs_error_mm": round(1000 * float(np.median(np.abs(value - truth))), 2),
                       "sensor_pixels_covered": round(float(both.sum() / (sensor > 0).sum()), 3)}
    return scores


def write_figure(scene: Path, run: Path, path: Path, height: int = 240) -> None:
    """The first held-out frame, the run's render of it, its rendered depth and the sensor's (never
    seen by the run; one scale takes the SfM unit to metres), side by side with captions (JPEG)."""
    from clusteringsdf.inference.visualize import depth_image, tile

    name = layout.read_splits(scene / layout.SPLITS_FILE)["test"][0]
    size = (height * 4 // 3, height)
    with Image.open(scene / "color" / f"{name}.png") as image:
        frame = np.asarray(image.convert("RGB").resize(size, Image.LANCZOS))
    with Image.open(run / "eval" / "rgb" / f"{name}.png") as image:
        render = np.asarray(image.convert("RGB").resize(size, Image.LANCZOS))
    sensor = _resized(sensor_depth(name), (height, size[0]))
    rendered = _resized(layout.read_depth(run / "eval" / "depth" / f"{name}.png"), (height, size[0]))
    both = (sensor > 0) & (rendered > 0)
    rendered = rendered * float(np.median(sensor[both] / rendered[both]))
    far = float(np.percentile(sensor[sensor > 0], 99))
    picture = tile([frame, render, depth_image(rendered, far), depth_image(sensor, far)],
                   ["held-out frame", "render", "rendered depth", "sensor depth (not used)"])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, quality=85)


def warnings_of(run: Path) -> list[str]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [entry["warning"] for entry in map(json.loads, lines) if "warning" in entry]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", choices=("points", "none"), default="points",
                        help="points: prepare's depth from the SfM points (the default); none: prepare --no-point-depth")
    parser.add_argument("--box", choices=("points", "frusta"), default="points", help="scene box without depth (default: points)")
    parser.add_argument("--iters", type=int, default=1000, help="training iterations (default: 1000)")
    parser.add_argument("--schedule", choices=("cpu", "short"), default="short", help="learning-rate schedule (default: short)")
    parser.add_argument("--downscale", type=float, default=2.0, help="train at this fraction of 640x480 (default: 2)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="more training settings")
    parser.add_argument("--name", default="", help="suffix of the run folder and the JSON file")
    parser.add_argument("--figure", type=Path, help="also write the figure (held-out frame, render, rendered and sensor depth) here")
    parser.add_argument("--figure-only", action="store_true", help="write --figure from the existing run; no preparing or training")
    args = parser.parse_args()

    folder = OUT / "real_colour_only"
    capture, log = folder / "capture", folder / "log.txt"
    scene = folder / ("scene" if args.depth == "points" else "scene_no_depth")
    run = folder / f"run_{args.depth}_{args.box}_{args.schedule}_{args.iters}{args.name}"
    if args.figure_only:
        if args.figure is None or not (run / "eval" / "metrics.json").is_file():
            parser.error(f"--figure-only needs --figure and a finished run at {run}")
        write_figure(scene, run, args.figure)
        return 0
    timings: dict[str, float] = {}
    if not (capture / "K_color.txt").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_capture(capture, list(range(30)), 640)
    if not (scene / "splits.json").is_file():  # the prepared scene is shared by the runs
        shutil.rmtree(scene, ignore_errors=True)
        start = time.perf_counter()
        prepare_colour_only(capture, scene, 640, log, args.depth == "points")
        timings["prepare"] = round(time.perf_counter() - start, 1)
    trained_scene = scene
    if args.box == "frusta":
        trained_scene = folder / "scene_frusta"
        shutil.rmtree(trained_scene, ignore_errors=True)
        shutil.copytree(scene, trained_scene)
        (trained_scene / "points3d.ply").unlink(missing_ok=True)
    start = time.perf_counter()
    cli("train", "--data", str(trained_scene), "--out", str(run), "--preset", "cpu", "--mode", "instance", "--iters", str(args.iters),
        "--downscale", str(args.downscale), "--eval", "--force", "--quiet", *(SHORT_SCHEDULE if args.schedule == "short" else []),
        *[item for setting in args.set for item in ("--set", setting)], log=log)
    timings["train_and_eval"] = round(time.perf_counter() - start, 1)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    prepared = json.loads((scene / "prepare.json").read_text())
    result = {
        "depth": args.depth, "box": args.box, "schedule": args.schedule, "set": args.set, "iterations": args.iters, "downscale": args.downscale,
        "frames_posed": prepared["poses"]["registered"], "frames": 30, "test_frames": metrics.get("frames"),
        "psnr_test": metrics.get("psnr"), "depth_consistency": metrics.get("depth_consistency"),
        "against_the_sensor": sensor_depth_scores(scene, run),
        "warnings": warnings_of(run), "timings_s": timings, "run": str(run),
    }
    if args.figure:
        write_figure(scene, run, args.figure)
    text = json.dumps(result, indent=1)
    (OUT / f"real_colour_only_{args.depth}_{args.box}{args.name}.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
