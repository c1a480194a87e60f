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

# (preset, seed, noise) -> content digest written by the generator of commit 419b33e
REFERENCE_DIGESTS = {
    ("tiny", 0, "medium"): "207fe657315d91e37423af4e3780e324b8d04df47be17ca1c0f2163d5b509658",
    ("tiny", 1, "high"): "da6afcb5a67f5038d7af5d197f94e602c81078c4cd645a08128bc9e2e1ee50f9",
    ("tiny", 2, "low"): "7027bf53ea6f712b7330dce7e404e617156d0607b2097c3f5d6c36ccf09f1b9a",
    ("room", 0, "medium"): "8bb9af55f34af62a58b8944889a2741a673761ae4fa2f1356a82856bbfbc966e",
    ("room", 1, "high"): "3f222553f0df550502349d39933605640372aafbef54cc05ce843d63503b72b4",
    ("room", 2, "low"): "dc97d2e44733bb8657203ab92b0ff9ff8d0cf9d3084ac87340373902d3715e3a",
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
