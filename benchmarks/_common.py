"""Shared helpers of the benchmark scripts: scenes are generated on first use under benchmarks/out/."""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def ensure_scene(preset: str, seed: int, noise: str, *, masks: str = "m2f") -> Path:
    """benchmarks/out/scenes/<preset>_<noise>[_<masks>][_s<seed>], generated if missing."""
    from clusteringsdf.data.synthetic import generate_scene

    name = f"{preset}_{noise}" + (f"_{masks}" if masks != "m2f" else "") + (f"_s{seed}" if seed else "")
    path = OUT / "scenes" / name
    if not (path / "splits.json").is_file():
        generate_scene(path, preset=preset, seed=seed, noise=noise, masks=masks)
    return path
