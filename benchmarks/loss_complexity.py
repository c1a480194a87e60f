"""Cost of one segmentation-loss evaluation (forward + backward): ClusteringSDF's clustering terms
vs Contrastive Lift's slow-fast contrastive loss, at 1024 / 4096 / 16384 rays and 10 / 50 labels.

The paper's complexity claim: clustering is O(N^2 |R|) (N labels), contrastive O(N |R|^2).
Prints one JSON object.

    python benchmarks/loss_complexity.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from clusteringsdf.losses import clustering
from clusteringsdf.losses.contrastive import slow_fast_loss


def clustering_loss(opacity: torch.Tensor, labels: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    probabilities = torch.softmax(opacity, -1)
    groups = clustering.make_groups(labels, frames)
    kept = probabilities[groups.keep]
    centres = clustering.cluster_centres(kept, groups)
    return (
        20 * clustering.differentiation_loss(centres, groups)
        + 1e4 * clustering.regularization_loss(kept, groups)
        + 1e3 * clustering.regularization_loss(kept, groups, "rays")
        + 0.5 * clustering.onehot_loss(opacity, labels)
        + clustering.foreground_background_loss(opacity, labels, 0.2, 0.1)
    )


def time_once(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for rays in (1024, 4096, 16384):
        for labels_count in (10, 50):
            labels = torch.randint(0, labels_count, (rays,), generator=generator)
            frames = torch.zeros(rays, dtype=torch.long)
            opacity = torch.rand(rays, max(args.channels, labels_count + 1), generator=generator).requires_grad_(True)
            fast = torch.randn(rays, 3, generator=generator).requires_grad_(True)
            slow = torch.randn(rays, 3, generator=generator)
            confidence = torch.ones(rays)

            def run_clustering():
                opacity.grad = None
                clustering_loss(opacity, labels, frames).backward()

            def run_contrastive():
                fast.grad = None
                concentration, contrast = slow_fast_loss(fast, slow, labels + 1, frames, confidence=confidence)
                (concentration + contrast).backward()

            t_cluster = time_once(run_clustering, args.repeats)
            t_contrast = time_once(run_contrastive, args.repeats)
            rows.append(
                {
                    "rays": rays,
                    "labels": labels_count,
                    "clustering_ms": round(1000 * t_cluster, 3),
                    "contrastive_ms": round(1000 * t_contrast, 3),
                    "speedup": round(t_contrast / t_cluster, 1),
                }
            )
    print(json.dumps({"threads": args.threads, "channels": args.channels, "device": "cpu", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
