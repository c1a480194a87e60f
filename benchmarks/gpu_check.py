"""The device check: the test suite on a device, then training speed and memory of the presets.

    bash benchmarks/gpu_check.sh [--device cuda|cpu] [--out FILE]

1. The device-parametrised tests (tests/test_devices.py and every other test that takes the
   ``device`` fixture) on the device: on CUDA their CUDA variants (``-m cuda``), on the CPU their CPU
   variants.
2. For the ``cpu``, ``gpu`` and ``paper`` presets on the synthetic room and the large scene:
   seconds and iterations per second at steady state, time to the first step, and peak GPU memory
   (on CUDA). Iteration counts are sized so that the whole check stays under 8 minutes on 2 CPU
   cores (on a GPU it is much faster).

Writes one JSON (default benchmarks/out/results/gpu_check_<device>.json) and prints it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import OUT, ensure_scene
from train_speed import measure

ROOT = Path(__file__).resolve().parent.parent
# (warm-up, measured) steps per preset and device: enough for a steady figure, few enough on a CPU
STEPS = {
    "cuda": {"cpu": (10, 50), "gpu": (10, 50), "paper": (3, 10)},
    "cpu": {"cpu": (3, 10), "gpu": (1, 3), "paper": (1, 2)},
}


def run_tests(device: str) -> dict:
    marker = "cuda" if device == "cuda" else "not cuda"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "tests/test_devices.py"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return {"command": " ".join(command[1:]), "exit_code": done.returncode, "summary": summary, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["cpu", "gpu", "paper"])
    parser.add_argument("--scenes", nargs="+", default=["room", "large"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: PyTorch sees no CUDA device (use --device cpu)", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result: dict = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "tests": run_tests(args.device),
        "speed": [],
    }
    for scene_name in args.scenes:
        scene = ensure_scene(scene_name, 0, "medium")
        for preset_name in args.presets:
            warmup, steps = STEPS[args.device][preset_name]
            began = time.perf_counter()
            row = measure(preset_name, scene, steps, warmup, {}, device=args.device)
            row["scene"] = scene_name
            row["seconds_including_setup"] = round(time.perf_counter() - began, 1)
            result["speed"].append(row)
            print(json.dumps({k: row[k] for k in ("scene", "preset", "iterations_per_second", "peak_gpu_memory_gib")}), file=sys.stderr, flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    out = args.out or OUT / "results" / f"gpu_check_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["tests"]["exit_code"] == 0 else 1)


if __name__ == "__main__":
    main()
