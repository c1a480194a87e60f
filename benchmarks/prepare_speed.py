"""Time `clusteringsdf prepare` on a 100-frame 320x240 capture and score its poses; prints JSON.

Captures (synthetic room of the given seeds; seed 0 has the cameras of `synth --preset room`; written once under
benchmarks/out/captures/): `textured` (SIFT-friendly surfaces) prepared from colour only and from
colour + depth, and `plain` (the room preset's own bare materials) with depth, which goes through
the RGB-D fall-back. Every run uses the `classical` segmenter and 2 threads. Pose errors are after a
similarity alignment: median rotation error (degrees), median camera-centre error (metres and % of
the room diagonal), the alignment scale (1.0 = metric) and the share of frames registered.

    python benchmarks/prepare_speed.py [--runs colour,depth,plain] [--frames 100] [--seeds 0,1,2] [--preset room|large]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

import numpy as np


from _common import OUT

from clusteringsdf.data import layout
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare import PrepareOptions, prepare_scene
from clusteringsdf.prepare.alignment import pose_errors


def capture(kind: str, frames: int, width: int, height: int, seed: int = 0, preset: str = "room"):
    suffix = (f"_seed{seed}" if seed else "") + (f"_{preset}" if preset != "room" else "")
    root = OUT / "captures" / f"{kind}_{frames}_{width}x{height}{suffix}"
    if root.exists() and not (root / "capture_info.json").is_file():
        shutil.rmtree(root)
    if not root.exists():
        write_capture(root, frames, width, height, seed=seed, textured=kind == "textured", preset=preset)
    truth = np.stack([layout.read_pose(p) for p in sorted((root / "pose").glob("*.txt"))])
    names = [p.stem for p in sorted((root / "pose").glob("*.txt"))]
    extent = json.loads((root / "capture_info.json").read_text())["extent_m"]
    return root, names, truth, extent


def run(name: str, kind: str, depth: bool, frames: int, width: int, height: int, seed: int = 0, preset: str = "room") -> dict:
    root, names, truth, extent = capture(kind, frames, width, height, seed, preset)
    out = OUT / "prepared" / name
    shutil.rmtree(out, ignore_errors=True)
    options = PrepareOptions(
        out=out, images=root / "color", depth=root / "depth" if depth else None,
        intrinsics=root / layout.INTRINSICS_FILE if depth else None, segmenter="classical", threads=2,
    )
    start = time.perf_counter()
    result = prepare_scene(options, log=lambda m: print(f"[{name}] {m}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    registered = sorted(p.stem for p in (out / "pose").glob("*.txt"))
    estimated = np.stack([layout.read_pose(out / "pose" / f"{n}.txt") for n in registered])
    errors = pose_errors(estimated, truth[[names.index(n) for n in registered]])
    return {
        "capture": f"{kind}, {preset} seed {seed}, {frames} frames at {width}x{height}" + (", depth" if depth else ""),
        "seconds": round(seconds, 1),
        "stages_s": {k: round(v, 1) for k, v in result.timings.items()},
        "pose_source": result.pose_source,
        "registered": f"{len(registered)}/{frames}",
        "median_rotation_deg": round(errors.median_rotation_deg, 3),
        "median_centre_m": round(errors.median_centre, 4),
        "median_centre_pct_extent": round(100 * errors.median_centre / extent, 3),
        "alignment_scale": round(errors.scale, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="colour,depth,plain")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--seeds", default="0", help="room seeds, comma-separated (0 is the tuned-on room)")
    parser.add_argument("--preset", choices=("room", "large"), default="room", help="the synthetic scene (large: two rooms, a longer loop)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    plans = {"colour": ("textured", False), "depth": ("textured", True), "plain": ("plain", True)}
    results = {}
    for seed in (int(v) for v in args.seeds.split(",")):
        for name in args.runs.split(","):
            kind, depth = plans[name]
            key = name + (f"_seed{seed}" if seed else "") + (f"_{args.preset}" if args.preset != "room" else "")
            results[key] = run(key, kind, depth, args.frames, width, height, seed, args.preset)
    print(json.dumps({"target": "<= 180 s per run on 2 cores (classical segmenter)", "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
