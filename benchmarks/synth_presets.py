"""Generation time, CPU time and peak memory of the synthetic presets; for ``tiny`` and ``room``, the
check that their output is unchanged (content digests recorded with the generator of commit 419b33e,
before the ``large`` preset existed).

Writes benchmarks/out/results/synth_presets.json and prints it.

    python benchmarks/synth_presets.py [--presets tiny room large] [--seed 0] [--noise medium] [--keep]

``--keep`` leaves the scenes in benchmarks/out/scenes/<preset>_<noise>[_s<seed>] (otherwise a
temporary folder is used and removed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from clusteringsdf.data.synthetic import generate_scene
from clusteringsdf.data.synthetic.digest import content_digest

from _common import OUT

# (preset, seed, noise) -> content digest (data.synthetic.digest) of the scene the generator of commit
# 419b33e writes
REFERENCE_DIGESTS = {
    ("tiny", 0, "medium"): "296f04ccc1519ee5ea3fe22f90083dba016fa2dfb53883769ac8be1d20363e48",
    ("tiny", 1, "high"): "0829d5dd68d5ce3ed7c0552a447c736d03c1c04a1158fd112eb1e5602911cc2b",
    ("tiny", 2, "low"): "c2419306fcc2b8a43381cbda172a9cf811d0013a2aae757d9faf9256949c4d40",
    ("room", 0, "medium"): "ad7ec23955dffaec5ef8c4053756fb6f486822c2b8f699470ffd717712a3664c",
    ("room", 1, "high"): "c4a3c8c3db03b10858c99a0dd7f6cfb69b0c7c4514e1b35229fa21e5df3e8dbb",
    ("room", 2, "low"): "85f9e479133b4349cc457bcc37f24b6410392ff3cdef575968620752b61511a6",
}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(preset: str, seed: int, noise: str, out: Path) -> dict:
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), cpu_seconds()
    info = generate_scene(out, preset=preset, seed=seed, noise=noise)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    things = Counter(o.class_name for o in info.objects if o.is_thing)
    row = {
        "preset": preset, "seed": seed, "noise": noise,
        "frames": info.num_frames, "resolution": list(info.resolution), "room_size_m": [round(v, 2) for v in info.room_size],
        "objects": len(info.objects), "things": info.num_things, "things_per_class": dict(sorted(things.items())),
        "wall_seconds": round(wall, 1), "cpu_seconds_all_processes": round(cpu, 1),
        "peak_rss_mib_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "peak_rss_mib_largest_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 0),
        "stage_seconds": {k: round(v, 1) for k, v in info.timings.items()},
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
        "size_mib": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1),
    }
    reference = REFERENCE_DIGESTS.get((preset, seed, noise))
    if reference is not None:
        row["unchanged_since_419b33e"] = content_digest(out) == reference
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "room", "large"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", default="medium")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        if args.keep:
            out = OUT / "scenes" / (f"{preset}_{args.noise}" + (f"_s{args.seed}" if args.seed else ""))
            if out.exists():
                raise SystemExit(f"{out} exists; remove it or run without --keep")
            rows.append(measure(preset, args.seed, args.noise, out))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(measure(preset, args.seed, args.noise, Path(tmp) / preset))
    results = OUT / "results"
    results.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"cpus": len(os.sched_getaffinity(0)), "runs": rows}, indent=2)
    (results / "synth_presets.json").write_text(text + "\n")
    print(text)
    if not all(row.get("unchanged_since_419b33e", True) for row in rows):
        raise SystemExit("a tiny or room scene differs from the one commit 419b33e wrote")


if __name__ == "__main__":
    main()
