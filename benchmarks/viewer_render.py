"""How long the viewer takes to open a run, colour its meshes and "render from here".

Opens RUN the way ``clusteringsdf view`` does (through the viewer's run access, without a server),
times the three colourings and renders every test camera's pose at the viewer's low resolution
(120 pixels high), as the *Render from here* button does. Prints JSON.

    python benchmarks/viewer_render.py RUN [--height 120] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from clusteringsdf.viewer.run_access import COLOURINGS, open_run, pinhole_intrinsics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    access = open_run(args.run, device=args.device)
    result = {"run": str(args.run), "device": args.device, "threads": args.threads, "open_seconds": round(time.perf_counter() - start, 2)}
    meshes = access.meshes("instance")
    result["objects"] = len(meshes.objects)
    result["vertices"] = int(sum(len(m.vertices) for m in meshes.objects.values()) + (len(meshes.background.vertices) if meshes.background else 0))
    for colouring in COLOURINGS:
        start = time.perf_counter()
        access.meshes(colouring)
        result[f"colour_{colouring}_seconds"] = round(time.perf_counter() - start, 2)
    seconds = []
    for camera in (c for c in access.cameras() if c.split == "test"):
        hw = (args.height, int(round(args.height * camera.aspect)))
        start = time.perf_counter()
        access.render(camera.pose_world, pinhole_intrinsics(camera.vertical_fov, hw), hw)
        seconds.append(time.perf_counter() - start)
    access.close()
    result.update(
        render_size=f"{hw[1]}x{hw[0]}",
        renders=len(seconds),
        render_seconds_median=round(float(np.median(seconds)), 2),
        render_seconds_max=round(float(np.max(seconds)), 2),
        render_seconds_first=round(seconds[0], 2),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
