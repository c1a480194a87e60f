"""Turn the benchmark JSON files in benchmarks/out/results/ into Markdown tables, written to
benchmarks/out/results_tables.md (docs/results.md is edited by hand from them: one current table
per claim).

Each section is written only when its results exist; every table names the command that
regenerates it. Run the benchmarks first (see docs/benchmarks.md), then:

    python benchmarks/write_results.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "out" / "results"
DOC = ROOT / "benchmarks" / "out" / "results_tables.md"
IMAGES = ROOT / "docs" / "images"
PANOPTIC = ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "ea", "psnr", "depth_abs_rel")
PANOPTIC_HEAD = ("PQ", "SQ", "RQ", "PQ th", "PQ st", "mIoU", "EA", "PSNR", "AbsRel")


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits if abs(value) < 100 else 1}f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |" for row in rows]
    return "\n".join(lines)


def label_section(data: dict) -> str:
    rows = []
    for noise, entry in data.items():
        gt, m = entry["ground_truth_as_prediction"], entry["machine_labels"]
        rows.append([noise, gt["pq"], gt["miou"], m["pq"], m["sq"], m["rq"], m["pq_things"], m["pq_stuff"], m["miou"], m["ea"]])
    return (
        "## Label maps as predictions (scoring sanity check and the 2D baseline)\n\n"
        "Synthetic room (seed 0, 100 frames at 320x240, 25 test views), native protocol.\n\n"
        + table(["noise", "GT: PQ", "GT: mIoU", "machine: PQ", "SQ", "RQ", "PQ th", "PQ st", "mIoU", "EA"], rows)
        + "\n\nThe machine labels' thing PQ is 0: their instance ids change from view to view, so no "
        "scene-level segment matches. `python benchmarks/label_baselines.py`\n"
    )


ROW_NAMES = {
    "machine_labels": "raw machine labels (2D)",
    "objectsdf_gt": "ObjectSDF++, GT labels (upper bound)",
    "objectsdf_m2f": "ObjectSDF++, raw machine labels",
    "semantic": "ClusteringSDF semantic (Eq. 10)",
    "semantic_ray": "ClusteringSDF semantic (Eq. 10 + per-ray class term)",
    "two_run": "ClusteringSDF panoptic, two runs (instance Eq. 11 + semantic run)",
    "panoptic": "ClusteringSDF panoptic, single run (ours)",
    "contrastive": "Contrastive Lift slow-fast, same backbone",
}
ABLATION_NAMES = {"two_run": "full instance mode", "no_diff": "without L_diff", "no_onehot": "without L_onehot", "no_reg": "without L_reg", "no_fgbg": "without L_fg-bg", "no_crossview": "without L_cross_view"}


def clustering_section(data: dict, results_name: str = "clustering", references: dict | None = None) -> str:
    """One budget's table and target checks. ``references``: rows of other results files
    (``<noise>/objectsdf_gt``, ``<noise>/objectsdf_m2f``) used for the targets when this file lacks them
    (named with their training time in the text)."""
    references = references or {}
    budget = data["budget_seconds"]
    if budget is None:  # --iterations: every row trains the preset's own iteration count
        out = ["## Panoptic lifting on the synthetic room: the `cpu` preset as it ships (its own iterations, 2 CPU threads)\n"]
        out.append("Every row trains the `cpu` preset's default iteration count; `train s` is what that takes on this machine. ")
    else:
        out = [f"## Panoptic lifting on the synthetic room (equal training budget: {budget:.0f} s per row, 2 CPU threads)\n"]
        out.append(
            "Every trained row is planned for the same training wall-clock: its iteration count is the budget divided by "
            "its mode's probed seconds per iteration (`seconds_per_iteration` below); `train s` is what it took. "
        )
    out[-1] += (
        "The GT-label row is the same run at both noise levels (GT labels do not depend on the noise). Scores on the 25 test views, "
        "native protocol. Instance-only rows take their classes from the semantic run (the paper's two-run path). "
        "Panoptic fusion (every row alike): one class per object channel; thing channels covering less than "
        "`inference.min_segment_fraction` = 2e-4 of the rendered pixels are fragments whose pixels go to their "
        "second-best channel (see the fragment threshold section).\n"
    )
    medium_gt = data.get("medium", {}).get("objectsdf_gt")  # GT labels do not depend on the noise
    gt_row, bound = medium_gt, "the GT upper bound"
    if gt_row is None and references.get("medium/objectsdf_gt"):
        gt_row = references["medium/objectsdf_gt"]
        bound = f"the GT upper bound of the {gt_row['train_seconds']:.0f} s run"
    for noise in ("medium", "high"):
        rows_data = data.get(noise)
        if not rows_data:
            continue
        rows = []
        for key, name in ROW_NAMES.items():
            entry = rows_data.get(key) or (medium_gt if key == "objectsdf_gt" else None)
            if entry:
                rows.append([name, entry.get("iterations", "-"), entry.get("train_seconds", "-")] + [entry.get(k) for k in PANOPTIC])
        out.append(f"### {noise} noise\n\n" + table(["", "iters", "train s"] + list(PANOPTIC_HEAD), rows) + "\n")
        if budget is not None and any(isinstance(r[2], (int, float)) and r[2] > 1.1 * budget for r in rows):
            out.append("Some rows trained longer than the budget (`train s`): the probe underestimated their pace on this shared machine.\n")
        checks = []
        machine = rows_data.get("machine_labels", {})
        objsdf_m2f, baseline = rows_data.get("objectsdf_m2f"), "ObjectSDF++ on machine labels"
        if objsdf_m2f is None and references.get(f"{noise}/objectsdf_m2f"):
            objsdf_m2f = references[f"{noise}/objectsdf_m2f"]
            baseline += f" (its {objsdf_m2f['train_seconds']:.0f} s run)"
        for key in ("two_run", "panoptic"):
            entry = rows_data.get(key)
            if entry and gt_row and objsdf_m2f:
                checks.append(
                    f"- {ROW_NAMES[key]}: PQ {fmt(entry['pq'])} = {100 * entry['pq'] / gt_row['pq']:.0f}% of {bound} "
                    f"(target >= 90%), {entry['pq'] - objsdf_m2f['pq']:+.3f} vs {baseline} (target >= +0.15); "
                    f"things only: PQ th {fmt(entry['pq_things'])} vs {fmt(objsdf_m2f['pq_things'])} ({entry['pq_things'] - objsdf_m2f['pq_things']:+.3f})."
                )
        for key in ("semantic", "semantic_ray", "panoptic"):
            entry = rows_data.get(key)
            if entry and machine.get("miou") is not None:
                checks.append(
                    f"- {ROW_NAMES[key]}: mIoU {fmt(entry['miou'])} vs machine labels {fmt(machine['miou'])} "
                    f"({100 * (entry['miou'] - machine['miou']):+.1f} points; target >= +5)."
                )
        if checks:
            out.append("\n".join(checks) + "\n")
    medium = data.get("medium", {})
    ablations = [[ABLATION_NAMES[k], medium[k].get("iterations")] + [medium[k].get(c) for c in ("pq", "pq_things", "pq_stuff", "miou")] for k in ABLATION_NAMES if k in medium]
    if len(ablations) > 1:  # the full instance row and at least one ablation
        out.append("### Ablations (medium noise, instance mode + the same semantic run)\n\n" + table(["", "iters", "PQ", "PQ th", "PQ st", "mIoU"], ablations) + "\n")
    rows = [
        [f"{ABLATION_NAMES.get(k, ROW_NAMES.get(k, k))} ({noise} noise)", str(p["gt_pair"]), str(p["predicted_ids"]), p["separated"]]
        for noise in ("medium", "high")
        for k in ("two_run", "panoptic", "no_crossview")
        if (p := data.get(noise, {}).get(k, {}).get("never_covisible_pair"))
    ]
    if rows:
        out.append(
            "### The never co-visible pair\n\nThe synthetic room has two things of different classes that no frame shows together. "
            "Majority predicted id of each on the test views:\n\n" + table(["run", "GT instances", "predicted ids", "separated"], rows) + "\n"
        )
    speeds = data.get("seconds_per_iteration", {})
    if speeds:
        out.append("Seconds per iteration (probe, `mode/labels`): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(speeds.items())) + "\n")
    prefix = "" if results_name == "clustering" else f"{results_name}_"
    length = f"--iterations {data['iterations']}" if budget is None else f"--budget {budget:.0f}"
    command = f"python benchmarks/clustering_results.py {length}" + ("" if results_name == "clustering" else f" --name {results_name} --rows ...")
    out.append(f"`{command}` (runs in benchmarks/out/runs/{prefix}<noise>_<row>)\n")
    return "\n".join(out)


def fragment_section(data: dict) -> str:
    """Scores of trained runs against the fusion's minimum segment size."""
    rows = []
    for run, by_fraction in data.items():
        for fraction, scores in by_fraction.items():
            rows.append([run, fraction] + [scores[k] for k in ("pq", "pq_things", "rq_things", "pq_stuff", "miou")])
    return (
        "## Fragment threshold of the panoptic fusion (`inference.min_segment_fraction`)\n\n"
        "Same renders, fused with each minimum segment size (share of all rendered test pixels; 0 keeps every "
        "channel; 2e-4 is the default, about 15 pixels per 320x240 view).\n\n"
        + table(["run", "fraction", "PQ", "PQ th", "RQ th", "PQ st", "mIoU"], rows)
        + "\n\n`python benchmarks/fragment_threshold.py benchmarks/out/runs/<run> ...`\n"
    )


def complexity_section(data: dict) -> str:
    rows = [[r["rays"], r["labels"], r["clustering_ms"], r["contrastive_ms"], f"{r['contrastive_ms'] / r['clustering_ms']:.1f}x"] for r in data["rows"]]
    return (
        "## Loss cost: clustering vs contrastive (forward + backward, ms, 2 threads)\n\n"
        + table(["rays", "labels", "clustering", "contrastive", "ratio"], rows)
        + "\n\nClustering is O(N^2 |R|) in the number of labels N, the contrastive loss O(N |R|^2). `python benchmarks/loss_complexity.py`\n"
    )


def speed_section(data: dict) -> str:
    rows = []
    for r in data["results"]:
        variant = r["preset"] + ("" if not r["overrides"] else " + " + ", ".join(f"{k}={v}" for k, v in r["overrides"].items()))
        rows.append([variant, r["sampler"], r["seconds_per_iteration"], r["iterations_per_second"], r["rays_per_second"], r["network_evaluations_per_iteration"], r["of_which_with_jacobian"], r["network_evaluations_per_second"]])
    return (
        f"## Training speed ({data['threads']} CPU threads, synthetic room, 1024 rays per step for `cpu`)\n\n"
        + table(["preset", "sampler", "s/iter", "iter/s", "rays/s", "net evals/iter", "with Jacobian", "net evals/s"], rows)
        + "\n\nSteady state: measured half-way through a long run (100 steps for the cpu variants, so the cached-volume refresh is amortised as in training). `python benchmarks/train_speed.py --iterations 100`\n"
    )


def spheres_section(data: dict) -> str:
    probe = data["probe"]
    rows = [[k, p["seconds_per_iteration"], p["network_evaluations_per_iteration"], p["rendering_evaluations_per_iteration"], p["regulariser_evaluations_per_iteration"], p["sphere_overhead_share"]] for k, p in probe.items()]
    curve_rows = []
    for kind, curve in data["curves"].items():
        for r in curve:
            curve_rows.append([kind, r["iteration"], r["train_seconds"], r["pq"], r["psnr"], r["depth_abs_rel"], r["miou"]])
    cost_rows = []
    for kind, cost in data.get("run_cost", {}).items():
        for seg in cost["segments"]:
            cost_rows.append([kind, f"{seg['iterations'][0]}-{seg['iterations'][1]}", seg["seconds_per_iteration"], seg["network_evaluations_per_iteration"],
                              seg["sphere_overhead_share"], "-" if seg["fallback_ray_share"] is None else seg["fallback_ray_share"]])
    text = (
        f"## Sphere-guided training: on vs off at equal wall-clock ({data['budget_seconds']:.0f} s, {data['mode']} on {data['labels']} labels)\n\n"
        "Both samplers train for the same time: the iteration count is planned from a probe, and a run whose training time "
        "misses the budget by more than 5% is planned again from its own pace. Quality on the 25 test views along each run "
        "(PQ and mIoU were scored during training, before object channels were rendered with the training opacity; "
        "both samplers alike, so the comparison holds, but they are not comparable with the tables above):\n\n"
        + table(["sampler", "iter", "train s", "PQ", "PSNR", "AbsRel", "mIoU"], curve_rows)
        + "\n\n![quality vs time](images/spheres_quality_vs_time.png)\n\n"
        + "Spheres on at least as good at the end: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in data["spheres_at_least_as_good"].items())
        + ".\n\nCost measured inside the two runs, per segment between evaluation points (evaluation rendering excluded; "
        "the fallback share is the share of training rays whose first surface is not inside their sphere intervals and "
        "which therefore use the grid sampler):\n\n"
        + table(["sampler", "iterations", "s/iter", "net evals/iter", "sphere overhead share", "fallback rays"], cost_rows)
        + f"\n\nNetwork evaluations per iteration in the last segment, off / on: **{data['evaluations_ratio_off_over_on']}x**.\n"
    )
    if "run_cost" in data and "spheres" in data["run_cost"]:
        text += f"Sphere overhead over the whole guided run: {100 * data['run_cost']['spheres']['sphere_overhead_share']:.1f}% of training time.\n"
    text += (
        "\nStart-up probe (an untrained field and an unconverged cloud, so only indicative):\n\n"
        + table(["sampler", "s/iter", "net evals/iter", "rendering", "regularisers", "sphere overhead share"], rows)
        + "\n"
    )
    return text + "\n`python benchmarks/spheres_comparison.py --budget 300 --points 2`\n"


def time_to_quality(spheres: dict) -> str | None:
    curve = spheres.get("curves", {}).get("grid") if spheres else None
    if not curve or spheres.get("mode") != "objectsdf":
        return None
    reached = next((r for r in curve if r["depth_abs_rel"] <= 0.05 and r["psnr"] >= 24 and r["pq"] >= 0.80), None)
    return (
        "## Backbone quality targets (cpu preset, GT labels, medium noise)\n\n"
        "Targets: test depth AbsRel <= 0.05, PSNR >= 24 dB, PQ >= 0.80. "
        + (f"First reached at the {reached['train_seconds']:.0f} s evaluation point (iteration {reached['iteration']}): "
           f"AbsRel {fmt(reached['depth_abs_rel'])}, PSNR {fmt(reached['psnr'], 2)}, PQ {fmt(reached['pq'])}."
           if reached else "Not reached within the budget.")
        + " (Grid-sampler curve of the sphere comparison.)\n"
    )


def geometry_section(geometry: dict, memory_log: str | None) -> str:
    scene = geometry["geometry"]["scene"] if "geometry" in geometry else geometry["scene"]
    objects = (geometry.get("geometry") or geometry).get("objects", {})
    text = (
        "## Meshes and geometry (panoptic run, medium noise, marching cubes at 512)\n\n"
        + table(["", "Chamfer-L1 (m)", "accuracy", "completeness", "precision", "recall", "F-score@5cm"],
                [["scene", scene["chamfer_l1"], scene["accuracy"], scene["completeness"], scene["precision"], scene["recall"], scene["fscore"]]])
        + "\n"
    )
    if objects:
        text += (
            f"\nObjects: {objects['predicted']} thing meshes, {objects['matched']} of {objects['gt_instances']} GT thing instances matched; "
            f"mean F-score@5cm over GT instances {fmt(objects['mean_fscore'])}, mean Chamfer-L1 of matches {fmt(objects['mean_chamfer_l1_matched'])} m.\n"
        )
    if memory_log:
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", memory_log)
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", memory_log)
        if peak:
            text += f"\n`mesh --resolution 512`: peak resident memory {int(peak.group(1)) / 1024**2:.2f} GiB, wall time {wall.group(1) if wall else '?'} (2 CPU threads).\n"
    return text + (
        "\n`clusteringsdf mesh --run RUN --resolution 512 --out MESHES` (under `/usr/bin/time -v`), then "
        "`clusteringsdf eval --scene SCENE --mesh MESHES`\n"
    )


def surface_section(before: dict | None, after: dict) -> str:
    """Per-object surface quality of the shipped preset, before and after the surface work."""
    runs = [("before", before), ("after", after)] if before else [("after", after)]
    text = "## Object surfaces (`cpu` preset, medium noise, marching cubes at 256)\n\n"
    rows = []
    for name, data in runs:
        scene, objects = data["scene"], data["objects"]
        rows.append([name, scene["chamfer_l1"], scene["precision"], scene["recall"], scene["fscore"],
                     f"{objects['matched']}/{objects['gt_things']}", objects["mean_fscore"], objects["max_floater_share"]])
    text += table(["", "scene Chamfer-L1 (m)", "precision", "recall", "scene F@5cm", "GT things matched",
                   "mean object F@5cm", "largest floater share"], rows) + "\n\nPer GT thing (F-score@5cm; precision / recall; floater share):\n\n"
    per = {name: {r["gt_instance"]: r for r in data["per_object"]} for name, data in runs}
    header = ["GT thing"] + [f"{name}: F (P / R), floaters" for name, _ in runs]
    rows = []
    for gt, row in per["after"].items():
        cells = [f"{gt} {row.get('gt_name') or ''}".strip()]
        for name, _ in runs:
            r = per[name].get(gt, {})
            cells.append("unmatched" if r.get("object") is None else
                         f"{r['fscore']:.3f} ({r['precision']:.2f} / {r['recall']:.2f}), {r['floater_share']:.3f}")
        rows.append(cells)
    text += table(header, rows) + "\n"
    commands = [f"`python benchmarks/surface_quality.py --run {data['run']} --resolution {data['resolution']}"
                + (f" --old-commit {data['mesher'].split()[-1]}" if data["mesher"].startswith("package at") else "")
                + f"` ({name})" for name, data in runs]
    runs_made = ("Runs: `python benchmarks/clustering_results.py --iterations 4000 --noise medium --rows panoptic --name after16` "
                 "(before: the same command in a checkout of 419b33e, `--name before16`), then ")
    return text + "\n" + runs_made + "; ".join(commands) + "\n"


def json_section(title: str, data: dict, command: str) -> str:
    """A benchmark's figures as its JSON, with the command that makes them."""
    return f"## {title}\n\n```json\n{json.dumps(data, indent=2)}\n```\n\n`{command}`\n"


JSON_SECTIONS = (  # (results file, title, command)
    ("architecture_speed.json", "Train-speed probe of the cpu preset",
     "python benchmarks/train_speed.py --presets cpu --iterations 100 (old package: PYTHONPATH=<checkout of 419b33e>/src)"),
    ("render_speed.json", "Rendering speed: orbit frames with normals, new path against the old one",
     "python benchmarks/render_speed.py --run RUN --frames 6"),
    ("large_scene.json", "Replica-size scene (`synth --preset large`): memory, pace and PQ of things",
     "python benchmarks/large_scene.py"),
    ("gpu_check_cpu.json", "Device check on the CPU (no GPU was lent)", "bash benchmarks/gpu_check.sh --device cpu"),
    ("gpu_check_cuda.json", "Device check on a GPU", "bash benchmarks/gpu_check.sh --device cuda"),
    ("prepare_speed.json", "`prepare` on 100 frames at 320x240: time and pose errors", "python benchmarks/prepare_speed.py"),
    ("prepare_quality.json", "Training on a prepared capture against the same run on true poses",
     "python benchmarks/prepare_quality.py"),
)


EXAMPLE_RUN = ROOT / "benchmarks" / "out" / "runs" / "medium_panoptic"
EXAMPLE_TRAJECTORY = ROOT / "benchmarks" / "out" / "trajectory_orbit" / "frames"


def export_example_images() -> list[str]:
    """Small JPEG copies of the example run's report pictures and one orbit frame for the README."""
    from PIL import Image

    sources = {
        "example_view.jpg": next(iter(sorted((EXAMPLE_RUN / "report").glob("view_*.png"))), None),
        "example_mesh_scene.jpg": EXAMPLE_RUN / "report" / "mesh_scene.png",
        "example_mesh_objects.jpg": EXAMPLE_RUN / "report" / "mesh_objects.png",
        "example_orbit.jpg": EXAMPLE_TRAJECTORY / "0003.png",
    }
    written = []
    for name, source in sources.items():
        if source is not None and source.is_file():
            IMAGES.mkdir(parents=True, exist_ok=True)
            Image.open(source).convert("RGB").save(IMAGES / name, quality=82)
            written.append(name)
    return written


def main() -> None:
    parts = [
        "# Results\n",
        "Generated by `python benchmarks/write_results.py` from `benchmarks/out/results/*.json`. Machine: 2 CPU cores "
        "(no GPU was available for these measurements). Scenes: `clusteringsdf synth --preset room --seed 0 --noise <level>`.\n",
    ]
    labels = load("label_baselines.json")
    if labels:
        parts.append(label_section(labels))
    spheres = load("spheres.json")
    quality = time_to_quality(spheres)
    if quality:
        parts.append(quality)
    speed = load("train_speed.json")
    if speed:
        parts.append(speed_section(speed))
    budgets = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("clustering*.json"))}
    # A results file without a baseline row is compared with the longest-trained one there is.
    references = {}
    for key in ("medium/objectsdf_gt", "medium/objectsdf_m2f", "high/objectsdf_m2f"):
        noise, row = key.split("/")
        found = [data[noise][row] for data in budgets.values() if row in data.get(noise, {})]
        references[key] = max(found, key=lambda r: r["train_seconds"], default=None)
    for name, data in budgets.items():
        parts.append(clustering_section(data, name, references))
    fragments = load("fragment_threshold.json")
    if fragments:
        parts.append(fragment_section(fragments))
    complexity = load("loss_complexity.json")
    if complexity:
        parts.append(complexity_section(complexity))
    if spheres:
        parts.append(spheres_section(spheres))
    geometry = load("geometry_512.json")
    if geometry:
        log = RESULTS / "mesh512.log"
        parts.append(geometry_section(geometry, log.read_text() if log.is_file() else None))
    after = load("surface_after.json")
    if after:
        parts.append(surface_section(load("surface_before.json"), after))
    for name, title, command in JSON_SECTIONS:
        data = load(name)
        if data:
            parts.append(json_section(title, data, command))
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts))
    images = export_example_images()
    if images:
        print(f"wrote docs/images/{{{','.join(images)}}}")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
