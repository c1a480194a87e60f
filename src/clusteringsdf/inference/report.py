"""One HTML page that shows how a run went (``clusteringsdf report --run RUN``).

Writes ``RUN/report.html`` and its pictures in ``RUN/report/`` (relative links, inline CSS, no
external resources, so the folder can be copied or zipped as it is):

* metrics table: this run next to the raw machine labels (the 2D baseline) and any baseline runs;
* training curves (``curves.png``) and the training warnings from ``RUN/metrics.jsonl``;
* a few test views: input colour | machine labels | our labels | ground truth, for instances and
  for classes (``view_<frame>.png``), from the run's ``eval/`` renders;
* mesh previews (``mesh_scene.png``, ``mesh_objects.png``) rendered offscreen from ``RUN/meshes/``.

Whatever is missing is produced first: the test split is rendered and scored when ``RUN/eval``
has no scores, meshes are extracted (at a modest resolution) when ``RUN/meshes`` has none.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch

from ..data import layout
from ..data.scene import camera_up
from ..errors import ClusteringSDFError
from ..files import write_text_atomic
from ..methods import channel_sharing_note
from ..runs import METRICS_FILE, load_run_config
from .visualize import color_image, instance_image, semantic_image, tile

COLUMNS = ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou", "ea", "psnr", "depth_abs_rel", "depth_consistency")
HEADERS = ("PQ", "SQ", "RQ", "PQ th", "PQ st", "mIoU", "EA", "PSNR", "AbsRel", "depth agr.")
NOT_CURVES = {"iteration", "seconds", "lr"}
MIN_PANEL_WIDTH = 160


def _scores(run: Path) -> dict:
    path = run / "eval" / "metrics.json"
    if not path.is_file():
        raise ClusteringSDFError(f"{path}: not found (score the run first with `clusteringsdf train ... --eval` or `report --run {run}`)")
    return json.loads(path.read_text())


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def metrics_table(rows: list[tuple[str, dict]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_cell(scores.get(k))}</td>" for k in COLUMNS) + "</tr>" for name, scores in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def read_training_log(metrics_file: Path) -> tuple[list[dict], list[str]]:
    """RUN/metrics.jsonl: the logged steps' records and the training warnings (lines with a
    ``warning``, written when a training hook finds something wrong with the run)."""
    if not metrics_file.is_file():
        return [], []
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    return [r for r in lines if "warning" not in r], [f"training, step {r['iteration']}: {r['warning']}" for r in lines if "warning" in r]


def plot_curves(metrics_file: Path, out: Path) -> bool:
    """Loss terms against iteration, one small plot per term (log scale where positive)."""
    records, _ = read_training_log(metrics_file)
    if not records:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    names = [k for k in records[-1] if k not in NOT_CURVES]
    columns = 4
    rows = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.2 * rows), squeeze=False)
    iterations = np.array([r["iteration"] for r in records])
    for axis, name in zip(axes.flat, names):
        values = np.array([r.get(name, np.nan) for r in records], dtype=float)
        axis.plot(iterations, values, linewidth=1.0)
        if np.all(values[np.isfinite(values)] > 0):
            axis.set_yscale("log")
            # plain tick labels at 1, 2 and 5 per decade: matplotlib's default mathtext labels made this plot 3x slower
            axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
            axis.yaxis.set_minor_locator(NullLocator())  # minor log ticks: half the drawing time, unlabelled anyway
        axis.set_title(name, fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.06, top=0.94, wspace=0.3, hspace=0.5)  # tight_layout: 2 s of measuring text
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return True


def _resize_nearest(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if labels.shape == hw:
        return labels
    from PIL import Image

    return np.asarray(Image.fromarray(labels.astype(np.int32)).resize((hw[1], hw[0]), Image.NEAREST))


def view_pictures(scene, eval_dir: Path, out_dir: Path, count: int) -> list[tuple[str, str]]:
    """Per chosen test view one picture (two rows: instances, classes); returns (frame, file) pairs.
    Views are chosen among those the evaluation rendered (all, or every k-th with ``eval_every``)."""
    test = np.array([i for i in scene.split("test") if (eval_dir / "pred_semantics" / f"{scene.frame_names[i]}.png").is_file()], dtype=np.int64)
    chosen = test[np.round(np.linspace(0, len(test) - 1, min(count, len(test)))).astype(int)] if len(test) else []
    pictures = []
    for frame in chosen:
        name = scene.frame_names[frame]
        hw = scene.hw
        ours_semantic = _resize_nearest(layout.read_label(eval_dir / "pred_semantics" / f"{name}.png"), hw)
        ours_instance = _resize_nearest(layout.read_label(eval_dir / "pred_instance" / f"{name}.png"), hw)
        colour = color_image(scene.colors[frame]) if scene.colors is not None else np.zeros((*hw, 3), np.uint8)
        blank = np.full_like(colour, 255)

        def pick(maps, painter):
            return painter(maps[frame]) if maps is not None else blank

        instance_row = tile(
            [colour, pick(scene.m2f_instance, instance_image), instance_image(ours_instance), pick(scene.gt_instance, instance_image)],
            ["input colour", "machine instances", "our instances", "ground truth"],
        )
        class_row = tile(
            [blank, pick(scene.m2f_semantics, semantic_image), semantic_image(ours_semantic), pick(scene.gt_semantics, semantic_image)],
            ["", "machine classes", "our classes", "ground truth"],
        )
        picture = np.concatenate([instance_row, np.full((4, instance_row.shape[1], 3), 255, np.uint8), class_row])
        factor = -(-MIN_PANEL_WIDTH // hw[1])  # small working resolutions are enlarged (nearest) to stay legible
        picture = picture.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else picture
        file = f"view_{name}.png"
        layout.write_color(out_dir / file, picture)
        pictures.append((name, file))
    return pictures


def mesh_pictures(mesh_dir: Path, out_dir: Path, up: np.ndarray) -> list[tuple[str, str]]:
    """Dollhouse previews of the scene mesh (by instance) and of the thing objects alone."""
    from ..data.mesh_io import read_mesh
    from .mesh_preview import preview_mesh

    def load(path: Path):
        mesh = read_mesh(path)
        return np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.visual.vertex_colors)[:, :3]

    pictures = []
    if (mesh_dir / "scene_instance.ply").is_file():
        layout.write_color(out_dir / "mesh_scene.png", preview_mesh(*load(mesh_dir / "scene_instance.ply"), up=up))
        pictures.append(("scene mesh, coloured by instance", "mesh_scene.png"))
    index = json.loads((mesh_dir / "index.json").read_text()) if (mesh_dir / "index.json").is_file() else {"objects": []}
    parts = [load(mesh_dir / o["file"]) for o in index["objects"] if o.get("thing") and (mesh_dir / o["file"]).is_file()]
    if parts:
        offsets = np.cumsum([0] + [len(v) for v, _, _ in parts[:-1]])
        vertices = np.concatenate([v for v, _, _ in parts])
        faces = np.concatenate([f + o for (_, f, _), o in zip(parts, offsets)])
        colors = np.concatenate([c for _, _, c in parts])
        layout.write_color(out_dir / "mesh_objects.png", preview_mesh(vertices, faces, colors, up=up))
        pictures.append((f"{len(parts)} object meshes", "mesh_objects.png"))
    return pictures


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; margin: 4px 0; }}
figure {{ display: inline-block; margin: 8px; }}
.meta {{ color: #555; }}
.note {{ background: #fff4d6; border-left: 4px solid #e0a800; padding: 6px 10px; }}
</style></head><body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
{notes}
<h2>Scores on the test views</h2>
{table}
<h2>Training curves</h2>
{curves}
<h2>Test views</h2>
{views}
<h2>Meshes</h2>
{meshes}
{geometry}
</body></html>
"""


def geometry_tables(mesh_dir: Path) -> str:
    """Scene and per-object geometry scores (``RUN/meshes/geometry.json``, written by ``--eval``)."""
    path = mesh_dir / "geometry.json"
    if not path.is_file():
        return ""
    scores = json.loads(path.read_text())
    scene = scores["scene"]
    parts = [
        f"<h3>Geometry against the GT mesh (F-score at {100 * scores['threshold_m']:.0f} cm, observed surface only)</h3>",
        "<table><tr><th></th><th>Chamfer-L1 (m)</th><th>accuracy</th><th>completeness</th><th>precision</th><th>recall</th><th>F-score</th></tr>",
        "<tr><td>scene</td>" + "".join(f"<td>{_cell(scene.get(k))}</td>" for k in ("chamfer_l1", "accuracy", "completeness", "precision", "recall", "fscore")) + "</tr>",
        "</table>",
    ]
    if "note" in scores:
        parts.append(f'<p class="note">{html.escape(scores["note"])}</p>')
    objects = scores.get("objects")
    if objects:
        parts.append(
            f"<p>{objects['matched']} of {objects['gt_instances']} GT objects matched, mean F-score {_cell(objects['mean_fscore'])} "
            "(unmatched count 0)</p><table><tr><th>object</th><th>GT instance</th><th>F-score</th><th>precision</th><th>recall</th>"
            "<th>Chamfer-L1 (m)</th><th>floaters</th></tr>"
        )
        for m in objects["matches"]:
            cells = "".join(f"<td>{_cell(m.get(k))}</td>" for k in ("fscore", "precision", "recall", "chamfer_l1", "floater_share"))
            parts.append(f"<tr><td>{m['object']}</td><td>{m['gt_instance']}</td>{cells}</tr>")
        parts.append("</table>")
    return "\n".join(parts)


def build_report(
    run: Path, device: torch.device, baselines: list[Path] = (), mesh_resolution: int = 128, *, views: int = 4, progress: bool = False,
    scene_path: Path | None = None,
) -> Path:
    """Write RUN/report.html (and RUN/report/*.png); returns the page's path. The scene's frames
    come from ``scene_path`` or where the run recorded its scene."""
    from ..evaluation import evaluate_predictions
    from ..runs import load_trained_run
    from .evaluate_run import evaluate_run
    from .mesh import extract_meshes

    run = Path(run)
    config = load_run_config(run)
    trained = load_trained_run(run, device, scene_path=scene_path)
    scene_root = trained.scene.root
    if not (run / "eval" / "metrics.json").is_file():
        evaluate_run(run, device, trained=trained, progress=progress)
    if not (run / "meshes" / "index.json").is_file():
        extract_meshes(trained, run / "meshes", resolution=mesh_resolution)
    scores = _scores(run)
    rows = [(f"{run.name} ({config.mode}, {config.data.labels} labels)", scores)]
    if (scene_root / "rs_instance").is_dir():
        rows.append(("raw machine labels (2D)", evaluate_predictions(scene_root, scene_root, use_machine_labels=True)))
    for baseline in baselines:
        baseline = Path(baseline)
        rows.append((f"{baseline.name} ({load_run_config(baseline).mode})", _scores(baseline)))

    out_dir = run / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = '<img src="report/curves.png" alt="training curves">' if plot_curves(run / METRICS_FILE, out_dir / "curves.png") else "<p>no metrics logged</p>"
    scene = trained.load_frames({"color", "m2f", "gt"})
    view_html = "".join(
        f'<figure><img src="report/{file}" alt="view {html.escape(name)}"><figcaption>test view {html.escape(name)}</figcaption></figure>'
        for name, file in view_pictures(scene, run / "eval", out_dir, views)
    )
    up = camera_up(scene.poses)
    mesh_html = "".join(
        f'<figure><img src="report/{file}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for caption, file in mesh_pictures(run / "meshes", out_dir, up)
    ) or "<p>no meshes</p>"
    records, warnings = read_training_log(run / METRICS_FILE)
    last = records[-1] if records else {}
    meta = (
        f"scene {html.escape(str(scene_root))} &middot; mode {config.mode} &middot; labels {config.data.labels} &middot; "
        f"{last.get('iteration', 0)} iterations in {last.get('seconds', 0):.0f} s &middot; sampler {config.sampler.kind} &middot; "
        f"{scene.hw[1]}x{scene.hw[0]} working resolution"
    )
    notes = "".join(
        f'<p class="note">{html.escape(note)}</p>' for note in (*warnings, scores.get("note"), channel_sharing_note(scores.get("channels"))) if note
    )
    page = PAGE.format(
        title=f"ClusteringSDF run {html.escape(run.name)}", meta=meta, notes=notes, table=metrics_table(rows), curves=curves, views=view_html,
        meshes=mesh_html, geometry=geometry_tables(run / "meshes"),
    )
    path = run / "report.html"
    write_text_atomic(path, page)
    return path
