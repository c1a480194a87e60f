"""Command line: ``clusteringsdf <command> ...``. One sub-command per verb.

Errors in user input print one line, ``error: <file>: <problem>``, and exit with code 2; an
interrupted training run exits with 130 (Ctrl-C) or 143 (SIGTERM) after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import ClusteringSDFError, UsageError

EXIT_USER_ERROR = 2


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


# ------------------------------------------------------------------------------------------ synth


def cmd_synth(args: argparse.Namespace) -> int:
    from .data.synthetic import generate_scene

    start = time.perf_counter()
    try:
        info = generate_scene(Path(args.out), preset=args.preset, seed=args.seed, noise=args.noise, masks=args.masks, progress=not args.quiet)
    except ValueError as exc:
        raise ClusteringSDFError(str(exc)) from None
    masks = "" if args.masks == "m2f" else f", class-agnostic {args.masks} masks"
    print(f"wrote {args.out}: {info.num_frames} frames at {info.width}x{info.height}, {info.num_things} things{masks} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


# ---------------------------------------------------------------------------------------- prepare


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import PrepareOptions, prepare_scene

    options = PrepareOptions(
        out=Path(args.out), images=_path(args.images), video=_path(args.video), depth=_path(args.depth), depth_scale=args.depth_scale,
        depth_intrinsics=args.depth_intrinsics, depth_to_color=_path(args.depth_to_color), color_to_depth=_path(args.color_to_depth),
        mono_depth=args.mono_depth, mono_depth_output=args.mono_depth_output, point_depth=not args.no_point_depth, intrinsics=_path(args.intrinsics), poses=args.poses,
        poses_path=_path(args.poses_path), matching=args.matching,
        segmenter=args.segmenter, segmenter_weights=args.segmenter_weights, masks=_path(args.masks), masks_format=args.masks_format,
        every=args.every, fps=args.fps, blur_ratio=args.blur_ratio, max_size=args.max_size, test_every=args.test_every,
        min_registered=args.min_registered, device=_segmenter_device(args.device, args.segmenter, args.mono_depth is not None),
        threads=args.threads, keep_work=args.keep_work,
    )
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    prepare_scene(options, log=(lambda message: None) if args.quiet else say, warn=say)
    return 0


def _segmenter_device(name: str, segmenter: str, mono_depth: bool = False) -> str:
    """``prepare --device``: cpu, cuda, or auto (cuda when PyTorch sees a GPU). Only mask2former,
    sam and the --mono-depth model run on it: for them, cuda without a GPU is a one-line error before any work."""
    if name == "auto" or name == "cuda" and (segmenter in ("mask2former", "sam") or mono_depth):
        from .runs import resolve_device

        return str(resolve_device(name))
    return name


# ------------------------------------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from .data.layout import scene_is_metric
    from .data.scene import load_scene

    scene = load_scene(args.scene, downscale=args.downscale)
    classes = scene.classes
    unit = "metre" if scene_is_metric(scene.root) else "scene unit (arbitrary scale: no depth or metric poses)"
    lines = [
        f"scene        {scene.root}",
        f"frames       {scene.num_frames} ({', '.join(f'{k} {len(v)}' for k, v in scene.splits.items())})",
        f"resolution   {scene.native_hw[1]}x{scene.native_hw[0]} (working {scene.hw[1]}x{scene.hw[0]})",
        f"classes      {classes.num_classes} ({len(classes.thing_classes)} thing, {len(classes.stuff_classes)} stuff)",
        f"normalised   scale {scene.normalization.scale:.4f} per {unit}, box {np.round(scene.bbox, 3).tolist()}",
    ]
    valid = scene.depths[scene.depths > 0] if scene.depths is not None else None
    if valid is not None and valid.size:
        lines.append(f"depth        {valid.min():.3f} - {valid.max():.3f} m ({100 * valid.size / scene.depths.size:.1f}% valid)")
    else:
        lines.append("depth        none" if valid is None else "depth        none valid (every depth map is empty)")
    lines.append(f"normals      {'yes' if scene.normals is not None else 'none'}")
    for name, sem, ins in (("machine", scene.m2f_semantics, scene.m2f_instance), ("ground truth", scene.gt_semantics, scene.gt_instance)):
        if sem is None:
            lines.append(f"{name:12s} none")
            continue
        segments = [len(np.unique(ins[f][ins[f] > 0])) for f in range(scene.num_frames)]
        lines.append(
            f"{name:12s} {len(np.unique(sem))} classes, {len(np.unique(ins[ins > 0]))} instance ids, "
            f"{np.mean(segments):.1f} instances per frame (max {max(segments)})"
        )
    if scene.confidence is not None and scene.m2f_semantics is not None:
        lines.append(f"confidence   mean {scene.confidence.mean():.3f}")
    lines.append(f"gt mesh      {'yes' if scene.gt_mesh_path else 'none'}")
    print("\n".join(lines))
    return 0


# ------------------------------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_predictions

    if args.pred is None and args.mesh is None:
        raise UsageError("eval: give --pred (label maps) and/or --mesh (meshes)")
    result: dict = {}
    if args.pred is not None:
        result = evaluate_predictions(Path(args.scene), Path(args.pred), protocol=args.protocol, use_machine_labels=args.use_machine_labels,
                                      class_agnostic=True if args.class_agnostic else None)
        if "note" in result:  # a scene without ground truth: scored on its views only
            print(f"note: {result['note']}", file=sys.stderr)
    if args.mesh is not None:
        from .evaluation.geometry import evaluate_meshes

        result["geometry"] = evaluate_meshes(Path(args.scene), Path(args.mesh))
        if "note" in result["geometry"]:
            print(f"note: {result['geometry']['note']}", file=sys.stderr)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


# ------------------------------------------------------------------------------------------ train


def build_config(args: argparse.Namespace):
    """Preset, then a config file, then ``--set`` assignments, then the named flags (validated).
    Without a mode from any of them, GT labels train ObjectSDF++ and machine labels ClusteringSDF."""
    from .config import SWITCHES, Config, preset, read_config_file
    from .methods import method_class

    config = preset(args.preset)
    file_values = read_config_file(Path(args.config)) if getattr(args, "config", None) else {}
    config = Config.from_dict(file_values, base=config)
    assignments = getattr(args, "set", None) or []
    config = config.with_text_values(assignments)
    values: dict = {}
    channels = getattr(args, "channels", None)
    if channels is not None and channels != "auto":
        values["field.channels"] = _channel_count(channels)
    for flag, key in (("labels", "data.labels"), ("mode", "mode"), ("downscale", "data.downscale"), ("iters", "train.iterations"), ("minutes", "train.minutes"),
                      ("seed", "train.seed"), ("sampler", "sampler.kind"), ("threads", "train.threads"), ("lr", "train.lr")):
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    mode_given = "mode" in values or "mode" in file_values or any(a.split("=", 1)[0].strip() == "mode" for a in assignments)
    if not mode_given:
        values["mode"] = default_mode(values.get("data.labels", config.data.labels), getattr(args, "data", None))
    spheres = getattr(args, "spheres", None)
    if spheres == "on":
        values["sampler.kind"] = "spheres"
    elif spheres == "off" and values.get("sampler.kind", config.sampler.kind) == "spheres":
        values["sampler.kind"] = "grid"
    for flag in ("diff", "onehot", "reg", "fgbg", "crossview"):  # an ablation sets the term's weights to 0
        if getattr(args, f"no_{flag}", False):
            values.update({key: 0.0 for key in SWITCHES[f"clustering.use_{flag}"]})
    config = config.with_values(values)
    method_class(config.mode)
    return config


def default_mode(labels: str, scene: str | None) -> str:
    """Without --mode: view-consistent GT labels need no clustering (supervised ObjectSDF++); raw
    machine labels get ClusteringSDF, panoptic (one model, both predictions), or instance mode when
    the scene's masks carry no classes (classical or SAM masks: its classes are "object" and
    "background", nothing for a semantic head to learn)."""
    if labels == "gt":
        return "objectsdf"
    if scene is not None and (Path(scene) / "segmentation_data.pkl").is_file():
        from .data.scene import read_classes

        if read_classes(Path(scene)).class_agnostic:
            return "instance"
    return "panoptic"


def _channel_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--channels: expected a number or 'auto', got '{text}'") from None


def auto_channels(config, scene_path: Path):
    """``--channels auto``: the scene's label statistics choose the channel count (see
    :func:`auto_channel_count`); returns the config with it, the loaded scene and its training labels."""
    from .runs.trained import load_run_scene
    from .sampling.frames import auto_channel_count, segment_statistics, training_labels
    from .sampling.places import count_places
    from .training.trainer import training_components

    scene = load_run_scene(config, scene_path, training_components(config))
    labels = training_labels(scene, config.data.labels, config.clustering.join_masks, notes=True)
    stats = segment_statistics(labels.instance)
    view_consistent = config.data.labels == "gt"
    places = None if view_consistent or scene.depths is None else count_places(scene, labels.instance, labels.semantic, gap=config.clustering.place_gap)
    channels = auto_channel_count(stats, view_consistent=view_consistent, places=places)
    found = f"{places} places in 3D, " if places is not None else ""
    print(
        f"channels auto: {channels} ({found}up to {stats.max_per_frame} segments in one frame, {stats.distinct} distinct ids over "
        f"{scene.num_frames} frames, {config.data.labels} labels)"
    )
    return config.with_values({"field.channels": channels}), scene, labels


def cmd_train(args: argparse.Namespace) -> int:
    from .data.layout import scene_depth_source
    from .runs import CONFIG_FILE, load_run_config, resolve_device
    from .runs.device import describe_device
    from .training.trainer import Trainer

    run = Path(args.out)
    device = resolve_device(args.device)
    config = build_config(args)
    scene = labels = None
    if args.resume and (run / CONFIG_FILE).is_file():
        config = load_run_config(run)
        if args.iters is not None:
            config = config.with_values({"train.iterations": args.iters})
    elif args.channels == "auto":
        config, scene, labels = auto_channels(config, Path(args.data))
    print(f"device: {describe_device(device, config.train.threads or None)}", flush=True)  # `batch` records this line
    depth_notes = {
        "mono": f"monocular (prepare --mono-depth), fitted per frame to the SfM points; loss.depth_mode={config.loss.depth_mode}",
        "sfm": "interpolated from the SfM points (colour only): coarse at depth edges, missing where nothing was matched",
        "none": "none (colour only): the field may form no surface; prepare writes depth from the SfM points unless --no-point-depth",
    }
    depth_source = scene_depth_source(Path(args.data))
    if depth_source in depth_notes:
        print(f"depth: {depth_notes[depth_source]}", flush=True)
    trainer = Trainer(config, Path(args.data), run, device, resume=args.resume, force=args.force, scene=scene, labels=labels, progress=not args.quiet)
    result = trainer.train()
    if result.interrupted:
        return 130 if trainer.stop_signal == 2 else 143
    print(f"trained {result.iterations} iterations in {result.seconds:.0f} s -> {run}")
    if args.eval:
        from .inference.evaluate_run import evaluate_run

        semantic_run = Path(args.semantic_run) if args.semantic_run else None
        scores = evaluate_run(run, device, split="test", trained=trainer.trained_run(), progress=not args.quiet, semantic_run=semantic_run)
        print(json.dumps(scores, indent=2, sort_keys=True))
        from .inference.report import build_report

        print(f"report: {build_report(run, device, progress=not args.quiet)}")
    return 0


# ----------------------------------------------------------------------------------------- render


def cmd_render(args: argparse.Namespace) -> int:
    from .runs import load_trained_run, resolve_device

    device = resolve_device(args.device)
    semantic_run = Path(args.semantic_run) if args.semantic_run else None
    fraction = args.min_segment_fraction
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise UsageError(f"render: --min-segment-fraction must be in [0, 1), got {fraction}")
    if args.trajectory is None:
        if args.video or args.frames is not None:
            raise UsageError("render: --frames and --video need --trajectory orbit|spiral|train")
        from .inference.evaluate_run import render_run

        out = render_run(Path(args.run), device, split=args.split, out_dir=Path(args.out) if args.out else None,
                         progress=not args.quiet, semantic_run=semantic_run, min_segment_fraction=fraction, scene_path=_path(args.scene))
        print(f"wrote {out}")
        return 0
    from .inference.trajectory import render_trajectory

    trained = load_trained_run(Path(args.run), device, scene_path=_path(args.scene))
    out = Path(args.out) if args.out else Path(args.run) / f"trajectory_{args.trajectory}"
    summary = render_trajectory(
        trained, args.trajectory, args.frames or 48, out, video=args.video, progress=not args.quiet, min_segment_fraction=fraction
    )
    height, width = summary["frame_size"]
    print(f"rendered {summary['frames']} frames of {width}x{height} in {summary['render_seconds']:.1f} s "
          f"({summary['frames_per_second']:.2f} frames/s)")
    print(f"wrote {summary['frames']} frames to {summary['folder']}" + (f" and {summary['video']}" if "video" in summary else ""))
    return 0


# ------------------------------------------------------------------------------------------- mesh


def cmd_mesh(args: argparse.Namespace) -> int:
    from .inference.mesh import extract_meshes
    from .runs import load_trained_run, resolve_device

    objects = None
    if args.objects != "all":
        try:
            objects = [int(v) for v in args.objects.split(",") if v]
        except ValueError:
            raise UsageError(f"--objects: expected 'all' or comma-separated channel ids, got '{args.objects}'") from None
    if not 0.0 <= args.min_component < 1.0:
        raise UsageError(f"--min-component: expected a share in [0, 1), got {args.min_component}")
    if args.resolution < 8:
        raise UsageError(f"--resolution: expected at least 8, got {args.resolution}")
    trained = load_trained_run(Path(args.run), resolve_device(args.device), scene_path=_path(args.scene))
    out = Path(args.out) if args.out else Path(args.run) / "meshes"
    start = time.perf_counter()
    index = extract_meshes(
        trained, out, resolution=args.resolution, objects=objects, mask_spheres=args.mask_spheres, watertight=args.watertight,
        min_component=args.min_component,
    )
    print(f"wrote {out}: scene mesh and {len(index['objects'])} object meshes at {args.resolution}^3 ({time.perf_counter() - start:.0f} s)")
    return 0


# ----------------------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """A run's meshes and labels (--run) or a scene's cameras and frames (--scene) in other tools' formats."""
    from .inference.export import RUN_FORMATS, export_run
    from .prepare.export import SCENE_FORMATS, export_scene

    if (args.run is None) == (args.scene is None):
        raise UsageError("export: give either --run RUN (formats " + ", ".join(RUN_FORMATS) + ") or --scene SCENE (formats "
                                 + ", ".join(SCENE_FORMATS) + ")")
    if args.scene is not None:
        if args.format not in SCENE_FORMATS:
            raise UsageError(f"--format: '{args.format}' exports a run (--run RUN); a scene exports as {' or '.join(SCENE_FORMATS)}")
        if args.out is None:
            raise UsageError("--out: needed with --scene (the folder to write)")
        summary = export_scene(Path(args.scene), args.format, Path(args.out), force=args.force)
    else:
        if args.format not in RUN_FORMATS:
            raise UsageError(f"--format: '{args.format}' exports a scene (--scene SCENE); a run exports as {', '.join(RUN_FORMATS)}")
        summary = export_run(Path(args.run), args.format, Path(args.out) if args.out else None, force=args.force, resolution=args.resolution,
                             device=args.device, points=args.points, seed=args.seed)
    details = ", ".join(f"{key} {value}" for key, value in summary.items() if key not in ("format", "folder"))
    print(f"wrote {summary['folder']} ({summary['format']}: {details})")
    return 0


# ----------------------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from .inference.report import build_report
    from .runs import resolve_device

    page = build_report(
        Path(args.run), resolve_device(args.device), baselines=[Path(b) for b in args.baseline], mesh_resolution=args.mesh_resolution,
        progress=not args.quiet, scene_path=_path(args.scene),
    )
    print(f"wrote {page}")
    return 0


# ------------------------------------------------------------------------------------------- view


def cmd_view(args: argparse.Namespace) -> int:
    """Serve a trained run in the browser until Ctrl-C / SIGTERM."""
    from .viewer.server import is_loopback, serve_until_stopped, start_viewer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0-65535, got {args.port}")
    viewer = start_viewer(Path(args.run), host=args.host, port=args.port, device=args.device, mesh_resolution=args.mesh_resolution,
                          scene_path=_path(args.scene))

    def announce() -> None:
        print(f"viewer of {args.run}: {viewer.url} (Ctrl-C to stop)", flush=True)
        if is_loopback(args.host):
            print(f"from another machine: ssh -L {viewer.port}:localhost:{viewer.port} USER@THIS_HOST, then open http://localhost:{viewer.port}", flush=True)
        else:
            print(f"note: serving on {args.host}, reachable by anyone who can reach this address (no password)", flush=True)

    serve_until_stopped(viewer, announce)
    print("viewer stopped")
    return 0


# ------------------------------------------------------------------------------------------- demo


# The demo's short schedule: twice the cpu preset's learning rate (the hash grid's as the preset's)
# over 800 steps at half resolution beats the raw labels' PQ and mIoU in about 3 minutes on 2 cores
# (PQ 0.902); the preset's 2000 steps at full resolution reach PQ 0.93 and better meshes. Demo
# meshes are extracted at 128.
DEMO_SCHEDULE = {"train.lr": 2e-3, "train.grid_lr_factor": 10.0, "inference.eval_mesh_resolution": 128}


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic room -> ClusteringSDF run on its raw machine labels -> scores vs the 2D labels."""
    from .data.synthetic import generate_scene
    from .evaluation import evaluate_predictions
    from .inference.evaluate_run import evaluate_run
    from .runs import resolve_device
    from .training.trainer import Trainer

    scene = Path(args.scene)
    if not (scene / "splits.json").is_file():
        print(f"writing a synthetic room to {scene} ...")
        generate_scene(scene, preset="room", seed=0, noise="medium")
    from .config import preset

    config = preset("cpu").with_values({
        "mode": "panoptic", "data.labels": "m2f", "data.downscale": args.downscale, "train.iterations": args.iters,
        "train.seed": args.seed, **DEMO_SCHEDULE,
    })
    run = Path(args.out)
    device = resolve_device(args.device)
    trainer = Trainer(config, scene, run, device, resume=run.exists(), progress=not args.quiet)
    result = trainer.train()
    if result.interrupted:
        return 130
    scores = evaluate_run(run, device, trained=trainer.trained_run(), progress=not args.quiet)
    machine = evaluate_predictions(scene, scene, use_machine_labels=True)
    keys = ("pq", "sq", "rq", "miou", "psnr", "depth_abs_rel")
    print(f"\n{'':28s}" + "".join(f"{k:>14s}" for k in keys))
    for name, values in (("raw machine labels (2D)", machine), ("ClusteringSDF (3D)", scores)):
        cells = "".join(f"{values[k]:14.3f}" if values.get(k) is not None else f"{'-':>14s}" for k in keys)
        print(f"{name:28s}{cells}")
    from .inference.report import build_report

    page = build_report(run, device, progress=not args.quiet)
    print(f"\nrenders and label maps: {run / 'eval'}; scores: {run / 'eval' / 'metrics.json'}; report: {page}")
    return 0


# ------------------------------------------------------------------------------------------ batch


def cmd_batch(args: argparse.Namespace) -> int:
    """One training (+ scores, meshes, report) per scene, as Ray tasks or one after another; with
    --prepare each positional is a capture, prepared first; with --task-index one scene, here."""
    from .batch import BatchOptions, run_batch

    options = BatchOptions(
        workers=args.workers, cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task, device=args.device,
        train_args=tuple(_batch_train_args(args)), mesh_resolution=args.mesh_resolution, address=args.address,
        capture=_batch_capture_options(args),
    )
    return run_batch([Path(s) for s in args.scenes], Path(args.out), options, task_index=args.task_index)


def _batch_train_args(args: argparse.Namespace) -> list[str]:
    """The train options of every scene's ``train`` command. They are checked here, once, the way
    ``train`` builds its config, so that a bad --set or --config fails before any scene starts."""
    build_config(argparse.Namespace(**{**vars(args), "preset": args.preset or "cpu"}))
    train_args: list[str] = []
    for option in TRAIN_VALUE_OPTIONS:
        value = getattr(args, option)
        if value is not None:
            train_args += [f"--{option}", str(value)]
    if args.config:
        train_args += ["--config", str(Path(args.config).resolve())]
    train_args += [f"--set={assignment}" for assignment in args.set]
    train_args += [f"--no-{flag}" for flag, _ in ABLATIONS if getattr(args, f"no_{flag}")]
    return train_args + list(args.train_arg)


BATCH_PREPARE_OPTIONS = ("depth_from", "depth_scale", "intrinsics", "poses", "segmenter", "segmenter_weights", "every", "fps", "max_size",
                         "test_every", "prepare_arg")


def _batch_capture_options(args: argparse.Namespace):
    """``batch --prepare``'s options for every capture (a :class:`~.batch.CaptureOptions`); None without --prepare."""
    from .batch import CaptureOptions

    given = [name for name in BATCH_PREPARE_OPTIONS if getattr(args, name) not in (None, [])]
    if not args.prepare:
        if given:
            raise UsageError(f"batch: --{given[0].replace('_', '-')} is a prepare option: add --prepare (the positionals are then captures)")
        return None
    values = {name: getattr(args, name) for name in given if name != "prepare_arg"}
    return CaptureOptions(**values, extra_args=tuple(args.prepare_arg))


# ----------------------------------------------------------------------------------------- parser

DESCRIPTION = """\
Split a 3D scene into objects: from photos or a video (optionally with depth)
and 2D masks that disagree between views, train one signed distance field per
object and get view-consistent object labels, renders, scores and meshes."""

EPILOG = """\
try it:            clusteringsdf demo
your own capture:  clusteringsdf prepare --images PHOTOS --out SCENE
                   clusteringsdf train --data SCENE --out RUN --eval
                   clusteringsdf mesh --run RUN
a command's help:  clusteringsdf COMMAND --help"""

DEVICE_HELP = "auto (cuda when PyTorch sees a GPU), cpu or cuda"
QUIET_HELP = "print no progress"
RUN_HELP = "a trained run folder (train --out)"
SCENE_HELP = "the run's scene folder, when it is no longer where the run recorded it (default: recorded relative to the run, then absolute)"


class HelpFormatter(argparse.HelpFormatter):
    """An option's help ends with its default unless the help names it already or there is none
    (a flag, an unset value, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.option_strings and default not in (None, False, [], argparse.SUPPRESS) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


class _TopHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """``clusteringsdf --help``: the description and epilog as written, and the commands listed
    without the COMMAND line above them."""

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):
            text = text.split("\n", 1)[1]
        return text


def _command(sub: argparse._SubParsersAction, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command: ``summary`` is its line in ``clusteringsdf --help``, ``description`` (default:
    the summary) heads its own ``--help``."""
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=HelpFormatter)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` command: synthetic room, training and scores in one go."""
    p = _command(sub, "demo", "try it: synthetic room -> training -> scores",
                 "Write a synthetic room, train ClusteringSDF on its noisy machine labels and compare its scores with the raw "
                 "2D labels (a few minutes on a CPU). Run it again to continue the run.")
    p.add_argument("--scene", default="scenes/demo", help="the synthetic scene folder (written when it holds no scene)")
    p.add_argument("--out", default="runs/demo", help="the run folder (continued when it holds the demo's run)")
    p.add_argument("--iters", type=int, default=800, help="training iterations")
    p.add_argument("--seed", type=int, default=0, help="training seed (the scene is always the same room)")
    p.add_argument("--downscale", type=float, default=2.0, help="train on images this many times smaller")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_demo)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    """The ``synth`` command: a synthetic benchmark scene."""
    p = _command(sub, "synth", "write a synthetic scene with ground truth",
                 "Write a synthetic benchmark scene (a room with objects: colour, depth, poses, noisy machine labels and "
                 "ground truth) in the Panoptic Lifting layout that train and eval read.")
    p.add_argument("out", help="output scene folder (must not exist or be empty)")
    p.add_argument("--preset", choices=("tiny", "room", "large"), default="room",
                   help="tiny: 64x48, 12 frames (tests); room: 320x240, 100 frames; large: two rooms, 640x480, 300 frames")
    p.add_argument("--seed", type=int, default=0, help="random seed of the layout, objects and camera path")
    p.add_argument("--noise", choices=("low", "medium", "high"), default="medium", help="machine-label noise level")
    p.add_argument("--masks", choices=("m2f", "sam", "fragments"), default="m2f",
                   help="machine labels: m2f: Mask2Former-like, with classes; sam: class-agnostic masks of whole objects and "
                   "their parts, like SAM's automatic masks; fragments: class-agnostic colour-and-depth superpixels "
                   "(the ground truth is the same for all)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_synth)


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    """The ``prepare`` command: a capture turned into a scene."""
    p = _command(sub, "prepare", "turn a capture (photos or a video) into a scene",
                 "Turn a capture (a folder of images or a video, optionally with depth) into a scene folder: camera poses, "
                 "undistortion, 2D masks. Depth or imported metric poses give the scene metric scale; without them its unit is arbitrary.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (any common format; file stems become frame names)")
    source.add_argument("--video", help="video file, sampled by --every / --fps (sharpest frame per window, blurred frames dropped)")
    p.add_argument("--out", required=True, help="output scene folder (must not exist or be empty)")
    p.add_argument("--depth", help="folder of depth maps named like the images (16-bit PNG/TIFF/PGM in 1/--depth-scale m, float TIFF or "
                   ".npy in m), registered to the colour frames unless --depth-intrinsics / --depth-to-color say otherwise")
    p.add_argument("--depth-scale", type=float, default=1000.0, help="depth units per metre of integer depth maps (default: %(default)s; TUM: 5000)")
    p.add_argument("--depth-intrinsics", metavar="K",
                   help="depth from a separate depth camera: its pinhole K at the depth maps' size, a 3x3/4x4 text file or fx,fy,cx,cy; "
                   "the depth is reprojected into the colour camera (needs --intrinsics; without --depth-to-color the cameras share "
                   "their centre and axes)")
    p.add_argument("--depth-to-color", metavar="T",
                   help="4x4 rigid transform (text, translation in metres) taking depth-camera points to colour-camera points "
                   "(X_color = T X_depth; RealSense's depth-to-color extrinsics); the depth is reprojected into the colour camera "
                   "(needs --intrinsics, and --depth-intrinsics unless the depth maps have the colour camera's size and K)")
    p.add_argument("--color-to-depth", metavar="T",
                   help="the inverse of --depth-to-color: colour-camera points to depth-camera points (ViSP's depth_M_color)")
    p.add_argument("--mono-depth", metavar="WEIGHTS",
                   help="colour-only captures: depth predicted by a transformers depth-estimation model (a local folder or a model id, "
                   "e.g. depth-anything/Depth-Anything-V2-Small-hf), fitted per frame to the SfM points, in the scene's unit "
                   "(prepare.json: depth_source mono)")
    p.add_argument("--mono-depth-output", choices=("auto", "disparity", "depth"), default="auto",
                   help="what the --mono-depth model predicts: disparity (relative inverse depth: Depth Anything, DPT) or depth "
                   "(metric models: ZoeDepth, Depth Pro); auto reads it from the model's config (default: %(default)s)")
    p.add_argument("--no-point-depth", action="store_true",
                   help="colour only, without --mono-depth: write no depth, instead of depth interpolated from the SfM points "
                   "(prepare.json: depth_source sfm)")
    p.add_argument("--intrinsics", help="known pinhole K (3x3 or 4x4 text) at the image size; needed by --poses rgbd")
    p.add_argument("--poses", choices=POSE_SOURCES, default="auto",
                   help="auto: SfM (RGB-D tracking when depth is given and SfM registers < 90%% or splits); or import existing poses")
    p.add_argument("--poses-path", help="colmap: sparse model folder; transforms: transforms.json; scannet: folder with pose/ and intrinsic/ "
                   "(default: beside the image folder)")
    p.add_argument("--matching", choices=("auto", "sequential", "exhaustive"), default="auto",
                   help="SfM matching (auto: sequential for video and > 50 images, else exhaustive)")
    p.add_argument("--segmenter", choices=("classical", "mask2former", "sam", "import"), default="classical",
                   help="2D masks: classical (no weights; class-agnostic, best with --depth), mask2former or sam (--segmenter-weights), "
                   "or import (--masks)")
    p.add_argument("--segmenter-weights", help="mask2former / sam checkpoint: a local folder (save_pretrained layout) or a Hugging Face "
                   "model id (e.g. facebook/sam-vit-base), found in the local HF cache or downloaded there unless HF_HUB_OFFLINE=1")
    p.add_argument("--masks", help="with --segmenter import: folder of existing masks")
    p.add_argument("--masks-format", choices=("coco-panoptic", "instance-png", "binary-masks", "panoptic-lifting"),
                   help="with --segmenter import: the layout of --masks")
    p.add_argument("--every", type=int, help="video: keep one frame per N (default: 10)")
    p.add_argument("--fps", type=float, help="video: keep about F frames per second")
    p.add_argument("--blur-ratio", type=float, default=0.5, help="video: drop frames sharper than less than this share of the median")
    p.add_argument("--max-size", type=int, help="downscale frames so that the long side has at most this many pixels")
    p.add_argument("--test-every", type=int, default=4, help="every N-th frame is a test view (0: no test split)")
    p.add_argument("--min-registered", type=float, default=0.5, help="fail when fewer than this share of frames get a pose")
    p.add_argument("--device", default="cpu", help="device of the mask2former / sam segmenters and the --mono-depth model (cpu, cuda, "
                   "or auto: cuda when available)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of SfM")
    p.add_argument("--keep-work", action="store_true", help="keep OUT/.work (staged frames, COLMAP database and logs)")
    p.add_argument("--quiet", action="store_true", help="print no progress (warnings and errors still print)")
    p.set_defaults(func=cmd_prepare)


def _add_info(sub: argparse._SubParsersAction) -> None:
    """The ``info`` command: a scene's summary."""
    p = _command(sub, "info", "check a scene folder and print a summary",
                 "Validate a scene folder (written by prepare or synth, or in the Panoptic Lifting layout) and print its frames, "
                 "resolution, classes, depth and labels.")
    p.add_argument("scene", help="the scene folder")
    p.add_argument("--downscale", type=float, default=1.0, help="load the images this many times smaller (the working resolution)")
    p.set_defaults(func=cmd_info)


def _add_train(sub: argparse._SubParsersAction) -> None:
    """The ``train`` command: one run on a scene."""
    p = _command(sub, "train", "train a run on a scene",
                 "Train a run on a scene: ClusteringSDF on machine labels by default. The config is the preset, then --config, "
                 "then --set, then the named options.")
    p.add_argument("--data", required=True, help="scene folder")
    p.add_argument("--out", required=True, help="run folder")
    _add_config_options(p, preset_default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads of torch (default: torch's count)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="start over even if --out holds another run (it is moved aside)")
    p.add_argument("--eval", action="store_true", help="render and score the test split at the end")
    p.add_argument("--semantic-run", help="with --eval: take classes from this semantic-mode run (two-run panoptic)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_train)


ABLATIONS = (("diff", "L_diff"), ("onehot", "L_onehot"), ("reg", "L_reg"), ("fgbg", "L_fg-bg"), ("crossview", "L_cross_view"))
TRAIN_VALUE_OPTIONS = ("preset", "mode", "labels", "iters", "minutes", "seed", "downscale", "sampler", "spheres", "channels", "lr")


def _add_config_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, preset_default: str | None) -> None:
    """The options that make a run's config (``train``'s, and ``batch``'s for every scene): preset,
    the named flags, a config file, ``--set`` assignments and the ablation switches."""
    from .config import LABEL_SOURCES, PRESETS, SAMPLERS
    from .methods import METHODS

    p.add_argument("--preset", choices=PRESETS, default=preset_default, help="config preset (default: cpu)")
    p.add_argument("--mode", choices=list(METHODS), help="default: panoptic (ClusteringSDF, one model) with --labels m2f, objectsdf with --labels gt")
    p.add_argument("--labels", choices=LABEL_SOURCES, help="m2f: raw machine labels (default); gt: view-consistent ground truth")
    p.add_argument("--iters", type=int, help="training iterations (default: the preset's)")
    p.add_argument("--minutes", type=float, help="train by a time budget: the run's length (and every schedule) follows the step time measured after its first steps")
    p.add_argument("--seed", type=int, help="random seed (default: the preset's)")
    p.add_argument("--downscale", type=float, help="train on images this many times smaller (default: the preset's)")
    p.add_argument("--sampler", choices=SAMPLERS, help="ray sampler (default: the preset's)")
    p.add_argument("--spheres", choices=("on", "off"), help="sphere-guided training: on = --sampler spheres, off = the preset's non-sphere sampler")
    p.add_argument("--channels", help="SDF channels (background + objects), or 'auto' to choose from the labels (default: the preset's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's; the hash grid uses train.grid_lr_factor times it)")
    p.add_argument("--config", help="a JSON file of config values applied over the preset (a run's config.json works too)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set any config value, e.g. --set loss.eikonal=0.05 (repeatable; see clusteringsdf/config.py)")
    for flag, what in ABLATIONS:
        p.add_argument(f"--no-{flag}", action="store_true", help=f"ablation: drop {what}")


def _add_render(sub: argparse._SubParsersAction) -> None:
    """The ``render`` command: a run's views or a novel-view trajectory."""
    p = _command(sub, "render", "render a run's views (for eval) or a camera path",
                 "Render a trained run's views of a split, in the layout eval reads, or a novel-view path (--trajectory).")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--scene", help=SCENE_HELP)
    p.add_argument("--split", choices=("test", "train", "all"), default="test", help="the views to render (all: every frame)")
    p.add_argument("--out", help="output folder (default: RUN/render_<split>, or RUN/trajectory_<path>)")
    p.add_argument("--semantic-run", help="take classes from this semantic-mode run (two-run panoptic)")
    p.add_argument("--trajectory", choices=("orbit", "spiral", "train"), help="render a novel-view path instead of a split")
    p.add_argument("--min-segment-fraction", type=float,
                   help="thing segments under this share of the rendered pixels are fragments (default: the run's, 2e-4; 0 keeps all)")
    p.add_argument("--frames", type=int, help="frames along the trajectory (default: 48)")
    p.add_argument("--video", action="store_true", help="also write an MP4 (GIF when no encoder is available)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_render)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    """The ``eval`` command: scores of predicted label maps and meshes."""
    p = _command(sub, "eval", "score label maps and meshes against ground truth",
                 "Score predicted label maps (render's output) and meshes (mesh's output) against a scene's ground truth; "
                 "prints the scores as JSON.")
    p.add_argument("--scene", required=True, help="the scene folder with ground truth (rs_* maps, gt_mesh.ply)")
    p.add_argument("--pred", help="folder with pred_semantics/ and pred_instance/ (or a scene with --use-machine-labels)")
    p.add_argument("--mesh", help="folder written by clusteringsdf mesh (scored against gt_mesh.ply)")
    p.add_argument("--json", help="also write the scores to this file")
    p.add_argument("--protocol", choices=("native", "panoptic-lifting"), default="native",
                   help="native: at the scene's resolution; panoptic-lifting: everything resized to 512x512 (nearest), as that paper scores")
    p.add_argument("--use-machine-labels", action="store_true", help="score PRED's m2f_* maps (the 2D baseline)")
    p.add_argument("--class-agnostic", action="store_true",
                   help="score instances without classes (GT things = objects); automatic for scenes without classes")
    p.set_defaults(func=cmd_eval)


def _add_mesh(sub: argparse._SubParsersAction) -> None:
    """The ``mesh`` command: scene and object meshes of a run."""
    p = _command(sub, "mesh", "extract the scene mesh and one mesh per object (PLY)",
                 "Extract the scene mesh and one mesh per object (PLY, and scene.glb) in scene units: metres when the capture "
                 "has depth or metric poses, an arbitrary unit for a colour-only capture prepared by SfM.")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--scene", help=SCENE_HELP)
    p.add_argument("--resolution", type=int, default=256, help="grid vertices along the longest side (lower it when out of memory)")
    p.add_argument("--objects", default="all", help="'all' or comma-separated channel ids")
    p.add_argument("--out", help="output folder (default: RUN/meshes)")
    p.add_argument("--mask-spheres", action="store_true", help="mesh only inside the sphere union (sphere-guided runs)")
    p.add_argument("--watertight", action="store_true", help="close every object mesh (for simulators and 3D printing)")
    p.add_argument("--min-component", type=float, default=0.05,
                   help="drop object mesh components under this share of the object's largest (0 keeps all)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_mesh)


def _add_export(sub: argparse._SubParsersAction) -> None:
    """The ``export`` command: a run's objects or a scene's cameras for other tools."""
    formats = ("obj", "glb", "ply", "points", "objects", "nerfstudio", "colmap")
    p = _command(sub, "export", "write meshes, points or cameras for other tools",
                 "Write a run's objects (obj, glb, ply, points, objects) or a scene's cameras and frames (nerfstudio, colmap) "
                 "in other tools' formats, in scene units (metres when the capture has depth).")
    p.add_argument("--run", help="a trained run (formats obj, glb, ply, points, objects)")
    p.add_argument("--scene", help="a scene folder (formats nerfstudio, colmap)")
    p.add_argument("--format", required=True, choices=formats, help="the output format (see above for --run or --scene)")
    p.add_argument("--out", help="output folder (default: RUN/export/<format>; needed with --scene)")
    p.add_argument("--force", action="store_true", help="replace an output folder that holds files")
    p.add_argument("--resolution", type=int, default=256, help="mesh resolution when the run has no meshes yet")
    p.add_argument("--points", type=int, default=200_000, help="points of the 'points' format")
    p.add_argument("--seed", type=int, default=0, help="random seed of the 'points' format")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_export)


def _add_report(sub: argparse._SubParsersAction) -> None:
    """The ``report`` command: a run's HTML report."""
    p = _command(sub, "report", "write RUN/report.html: scores, curves, views, meshes",
                 "Write RUN/report.html: scores, training curves, test views and mesh previews (meshes are extracted first "
                 "when the run has none).")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--scene", help=SCENE_HELP)
    p.add_argument("--baseline", action="append", default=[], help="another scored run to list in the table (repeatable)")
    p.add_argument("--mesh-resolution", type=int, default=128, help="resolution when meshes must be extracted first")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_report)


def _add_view(sub: argparse._SubParsersAction) -> None:
    """The ``view`` command: the browser viewer of a run."""
    p = _command(sub, "view", "look around a trained run in the browser",
                 "Serve a trained run to the browser (meshes, objects, cameras, renders) until Ctrl-C.")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--scene", help=SCENE_HELP)
    p.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--mesh-resolution", type=int, default=128, help="resolution when meshes must be extracted first")
    p.set_defaults(func=cmd_view)


def _add_batch(sub: argparse._SubParsersAction) -> None:
    """The ``batch`` command: many scenes (or captures), trained, scored, meshed and reported."""
    p = _command(sub, "batch", "train, score, mesh and report many scenes",
                 "Train, score, mesh and report many scenes (or, with --prepare, captures): Ray tasks, or one after another "
                 "without Ray. Run it again to continue where it stopped.")
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="scene folders (with --prepare: captures); each run goes to OUT/<folder name>")
    p.add_argument("--out", required=True, help="folder of the runs, the batch state, batch_summary.json and index.html")
    p.add_argument("--workers", type=int, default=1, help="scenes trained at once (Ray tasks)")
    p.add_argument("--address", help="an existing Ray cluster (default: start a local Ray instance)")
    p.add_argument("--cpus-per-task", type=int, help="CPUs (= torch threads) per scene (default: the CPUs divided by --workers)")
    p.add_argument("--gpus-per-task", type=float,
                   help="GPUs per scene, fractions share one (default: 1 with --device cuda, or auto on a cluster with GPUs, else 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP + ", for every scene")
    p.add_argument("--mesh-resolution", type=int, default=256, help="mesh --resolution after training; 0 keeps the report's coarse meshes")
    p.add_argument("--task-index", type=int, metavar="I",
                   help="run only the I-th scene (from 0), here and without Ray, and merge its row into OUT's summary (a SLURM array task)")
    train = p.add_argument_group("train options, for every scene")
    _add_config_options(train, preset_default=None)
    train.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                       help="any other train argument, repeatable (--train-arg=--flag=value)")
    _add_batch_prepare_options(p)
    p.set_defaults(func=cmd_batch)


POSE_SOURCES = ("auto", "sfm", "rgbd", "colmap", "transforms", "scannet")


def _add_batch_prepare_options(p: argparse.ArgumentParser) -> None:
    """``batch --prepare``: the positionals are captures, each prepared into OUT/scenes/<name> first."""
    g = p.add_argument_group("captures", "with --prepare, each SCENE is a capture (a folder of images or a video file) that prepare "
                             "turns into OUT/scenes/<name> first; everything of a capture is inside its folder")
    g.add_argument("--prepare", action="store_true", help="the positionals are captures: prepare each, then train on it")
    g.add_argument("--depth-from", metavar="NAME", help="image captures: depth maps named like the images are in the subfolder CAPTURE/NAME")
    g.add_argument("--depth-scale", type=float, help="depth units per metre of integer depth maps (default: 1000)")
    g.add_argument("--intrinsics", help="known pinhole K (3x3 or 4x4 text) of every capture's camera")
    g.add_argument("--poses", choices=POSE_SOURCES,
                   help="as prepare's (default: auto); colmap/transforms/scannet poses are looked for inside each capture folder")
    g.add_argument("--segmenter", choices=("classical", "mask2former", "sam"), help="as prepare's (default: classical)")
    g.add_argument("--segmenter-weights", help="checkpoint for mask2former / sam: a local folder or a Hugging Face model id")
    g.add_argument("--every", type=int, help="video captures: keep one frame per N (default: 10)")
    g.add_argument("--fps", type=float, help="video captures: keep about F frames per second")
    g.add_argument("--max-size", type=int, help="downscale frames so that the long side has at most this many pixels")
    g.add_argument("--test-every", type=int, help="every N-th frame is a test view (default: 4; 0: no test split)")
    g.add_argument("--prepare-arg", action="append", default=[], metavar="ARG",
                   help="any other prepare argument, repeatable (e.g. --prepare-arg=--matching=sequential)")


# The commands in the order of the work: try it, a scene from a capture, training, results, many scenes.
COMMANDS = (_add_demo, _add_synth, _add_prepare, _add_info, _add_train, _add_render, _add_eval, _add_mesh, _add_export, _add_report,
            _add_view, _add_batch)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one sub-command per verb, listed by ``--help`` in the order of
    :data:`COMMANDS`."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="clusteringsdf", description=DESCRIPTION, epilog=EPILOG, formatter_class=_TopHelpFormatter)
    parser.add_argument("--version", action="version", version=f"clusteringsdf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for add in COMMANDS:
        add(sub)
    return parser


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The sub-command's own parser (its usage line and errors)."""
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return sub.choices[command]


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:  # as argparse reports a bad option: the command's usage, then the error
        command = command_parser(parser, args.command)
        command.print_usage(sys.stderr)
        print(f"{command.prog}: error: {str(exc).removeprefix(f'{args.command}: ')}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ClusteringSDFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory (try --downscale 2 or a smaller preset)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only on request
        if os.environ.get("CLUSTERINGSDF_DEBUG"):
            raise
        from .runs.device import is_gpu_out_of_memory

        if is_gpu_out_of_memory(exc):
            print(f"error: out of GPU memory ({args.command}): {gpu_memory_advice(args)}", file=sys.stderr)
            return 1
        print(f"internal error: {type(exc).__name__}: {exc} (set CLUSTERINGSDF_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


def gpu_memory_advice(args: argparse.Namespace) -> str:
    """What to lower when a command runs out of GPU memory, with the values it ran with where they
    can be read."""
    cpu = "or run on the CPU with --device cpu"
    if args.command == "train":
        try:
            config = build_config(args)
            now = f" (now {config.batch.rays} and {config.inference.render_chunk})"
        except Exception:  # noqa: BLE001 - the advice without the values
            now = ""
        return (f"lower the rays per step, --set batch.rays=N, or train on smaller images, --downscale 2; --eval renders "
                f"--set inference.render_chunk=N rays at once{now}; {cpu}")
    if args.command in ("mesh", "export"):
        return f"lower --resolution (now {args.resolution}), {cpu}"
    if args.command in ("render", "report", "view"):
        from .runs import load_run_config

        try:
            now = f" (now {load_run_config(Path(args.run)).inference.render_chunk})"
        except Exception:  # noqa: BLE001
            now = ""
        meshes = f"; meshes: lower --mesh-resolution (now {args.mesh_resolution})" if hasattr(args, "mesh_resolution") else ""
        return (f"lower the rays rendered at once, inference.render_chunk in {Path(args.run) / 'config.json'}{now}; it needs no "
                f"retraining{meshes}; {cpu}")
    if args.command == "demo":
        return f"train on smaller images (--downscale 4), {cpu}"
    return f"free the GPU (nvidia-smi lists what uses it), {cpu}"


if __name__ == "__main__":
    sys.exit(main())
