"""How well joining a frame's masks along depth-continuous borders (``clustering.join_masks``) turns
over-segmenting masks into objects, measured against a synthetic scene's ground truth.

For every ``--every``-th frame, before and after joining: object masks per frame, masks that cover
two GT things (two of them hold over ``--share`` of the mask each) and GT things split between masks
(two masks hold over ``--share`` of the thing each). Prints one JSON object. No training.

    python benchmarks/mask_joins.py [--scene benchmarks/out/scenes/room_medium_fragments] [--every 5] [--share 0.2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from clusteringsdf.data.scene import load_scene
from clusteringsdf.sampling.joins import join_masks

from _common import ensure_scene


def count(masks: np.ndarray, things: np.ndarray, share: float) -> dict:
    """masks, things: (F, H, W) ids (0: none) -> the counts of the module docstring."""
    per_frame, merged, split, seen = [], 0, 0, 0
    for mask, thing in zip(masks, things):
        ids = np.unique(mask[mask > 0])
        per_frame.append(len(ids))
        for m in ids:
            owners, pixels = np.unique(thing[mask == m], return_counts=True)
            merged += int(((pixels > share * pixels.sum()) & (owners > 0)).sum() > 1)
        for t in np.unique(thing[thing > 0]):
            seen += 1
            parts, pixels = np.unique(mask[thing == t], return_counts=True)
            split += int(((pixels > share * (thing == t).sum()) & (parts > 0)).sum() > 1)
    return {"object_masks_per_frame": round(float(np.mean(per_frame)), 1), "masks_covering_two_things": merged,
            "things_split": split, "things_seen": seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, help="a synthetic scene (default: the room with fragment masks, written if missing)")
    parser.add_argument("--every", type=int, default=5, help="score every k-th frame (default: 5)")
    parser.add_argument("--share", type=float, default=0.2, help="share that makes a mask or thing count as two (default: 0.2)")
    args = parser.parse_args()
    scene = load_scene(args.scene or ensure_scene("room", 0, "medium", masks="fragments"))
    frames = np.arange(0, scene.num_frames, args.every)
    raw, things = scene.m2f_instance[frames], scene.gt_instance[frames]
    joined, _ = join_masks(raw, scene.depths[frames])
    print(json.dumps({"scene": str(scene.root), "frames": len(frames), "raw": count(raw, things, args.share),
                      "joined": count(joined, things, args.share)}, indent=2))


if __name__ == "__main__":
    main()
