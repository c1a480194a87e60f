"""How well the built-in `classical` segmenter's masks match the objects of the synthetic room.

Renders a synthetic capture (the `room` preset's plain materials, with depth), runs the classical
segmenter with a few background rules, and scores each frame's masks against the frame's thing
instances as 2D class-agnostic panoptic quality (things = GT thing instances; matching per frame,
TP/FP/FN summed over frames). Also reports the share of stuff pixels (walls, floor, ...) that the
masks turn into objects. Prints JSON.

    python benchmarks/classical_segmenter.py [--frames 25] [--size 320x240]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


from clusteringsdf.data import layout
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.evaluation.panoptic import panoptic_quality
from clusteringsdf.prepare.segmenters.classical import ClassicalOptions, ClassicalSegmenter


def score(segmenter: ClassicalSegmenter, root: Path, names: list[str], k: np.ndarray, use_depth: bool) -> dict:
    totals = {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}
    stuff_as_object = stuff_pixels = 0
    seconds = 0.0
    for name in names:
        rgb = layout.read_color(root / "color" / f"{name}.png")
        depth = layout.read_depth(root / "depth" / f"{name}.png") if use_depth else None
        gt_ins = layout.read_label(root / "rs_instance" / f"{name}.png")
        start = time.perf_counter()
        masks = segmenter.segment(rgb, depth, k if use_depth else None)
        seconds += time.perf_counter() - start
        pred = np.stack([np.where(masks.instance > 0, 2, 1).ravel(), masks.instance.ravel()], axis=1)
        gt = np.stack([np.where(gt_ins > 0, 2, 1).ravel(), gt_ins.ravel()], axis=1)
        result = panoptic_quality(pred, gt, things={2}, stuff={1}, robust=0.0)
        entry = result.per_class.get(2)
        if entry:
            for key in totals:
                totals[key] += entry[key]
        stuff = gt_ins == 0
        stuff_pixels += int(stuff.sum())
        stuff_as_object += int((stuff & (masks.instance > 0)).sum())
    denominator = totals["tp"] + 0.5 * totals["fp"] + 0.5 * totals["fn"]
    return {
        "pq_things_2d": round(totals["iou_sum"] / denominator, 4) if denominator else 0.0,
        "sq": round(totals["iou_sum"] / totals["tp"], 4) if totals["tp"] else 0.0,
        "tp": totals["tp"], "fp": totals["fp"], "fn": totals["fn"],
        "stuff_pixels_as_object": round(stuff_as_object / max(stuff_pixels, 1), 4),
        "seconds_per_frame": round(seconds / len(names), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", default="320x240")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    base = ClassicalOptions()
    variants = {
        "default (plane pieces > 1.5 m + share)": (base, True),
        "no background rule": (replace(base, max_share=1.0, max_extent=1e9), True),
        "plane pieces > 2 m": (replace(base, max_extent=2.0), True),
        "plane pieces > 3 m": (replace(base, max_extent=3.0), True),
        "colour only (share + 3 sides)": (base, False),
    }
    with tempfile.TemporaryDirectory() as tmp:
        capture = write_capture(Path(tmp) / "room", num_frames=args.frames, width=width, height=height, textured=False)
        results = {name: score(ClassicalSegmenter(options), capture.root, capture.names, capture.k, use_depth)
                   for name, (options, use_depth) in variants.items()}
    print(json.dumps({"frames": args.frames, "size": args.size, "variants": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
