"""Many scenes at once: ``clusteringsdf batch SCENE... --out RUNS`` trains, scores, meshes and reports
every scene, as Ray tasks (on a local Ray instance, or on an existing cluster with ``--address``) or,
without Ray, one after another; ``--task-index I`` runs only the I-th scene, here (one task of a
SLURM job array, say), and merges its row into the batch's files.

Each scene is one *job* that runs the package's own command line in a subprocess (``python -m
clusteringsdf``), so it depends on nothing but the CLI: with ``--prepare`` the positionals are
captures (a folder of images or a video file) and the job first runs ``prepare --images|--video
CAPTURE --out RUNS/scenes/<name> ...``; then ``train --data SCENE --out RUNS/<name> --eval --resume
--threads N ...`` (train, render and score the test views, write the report), then, unless
``--mesh-resolution 0``, ``mesh --run RUNS/<name> --resolution R`` and ``report --run RUNS/<name>``
again with those meshes. The device that training used (its ``device: ...`` line) is recorded.
The subprocess gets ``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = ``--threads`` = the task's CPU share:
two trainings sharing cores with more threads than cores run several times slower than alone.

A failed job is tried once more (continuing from its last checkpoint) and then reported without
stopping the others. The batch is resumable: started again on the same RUNS it skips finished runs
and prepared captures and continues interrupted runs with ``train --resume``; a job's command dies
with its job (``PR_SET_PDEATHSIG``: SIGTERM, on which training saves a checkpoint), and a per-scene
lock held by the command keeps a new job from starting while an old command is still stopping.

RUNS holds::

    <name>/                  the scene's run folder (``train --out``)
    scenes/<name>/           with --prepare: the capture's prepared scene (``prepare --out``)
    batch/<name>.log         the output of the scene's commands, every attempt appended
    batch/<name>.json        the job's record of its finished steps and training device (written by the job)
    batch/<name>.lock        held by the job and its command while they run
    batch/driver.lock        held by a batch (exclusively) or by ``--task-index`` tasks (shared)
    batch/summary.lock       held by a ``--task-index`` task while it merges its row into the files below
    batch_state.json         the driver's record: options, and each scene's status, attempts, error
    batch_summary.json       the summary table: status, attempts, seconds, device, scores, error per scene
    index.html               the summary as a page linking each run's report.html (relative links)
"""

from __future__ import annotations

import ctypes
import fcntl
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ClusteringSDFError, UsageError
from .files import write_json_atomic, write_text_atomic

STATE_FILE = "batch_state.json"
SUMMARY_FILE = "batch_summary.json"
INDEX_FILE = "index.html"
JOB_DIR = "batch"
SCENES_DIR = "scenes"  # prepared captures
SUMMARY_LOCK = "summary.lock"
SCORE_KEYS = ("pq", "pq_things", "pq_stuff", "sq", "rq", "miou", "psnr", "depth_abs_rel", "depth_consistency")
LOCK_WAIT_S = 300.0  # how long a job waits for an earlier command of its scene to stop
PARENT_ENV = "CLUSTERINGSDF_BATCH_PARENT"
DEVICE_PREFIX = "device: "  # the line `train` prints first


@dataclass(frozen=True)
class CaptureOptions:
    """``batch --prepare``: every positional is a capture, a folder of images or a video file, that
    ``prepare`` turns into RUNS/scenes/<name> first. Everything of a capture is inside its folder:
    depth maps in the subfolder ``depth_from``, imported poses as ``sparse/0`` (colmap),
    ``transforms.json`` (transforms) or ``pose/`` + ``intrinsic/`` (scannet).

    Attributes:
        depth_from: image-folder captures: their depth maps are in CAPTURE/<depth_from> (video captures have none).
        depth_scale, intrinsics, poses, segmenter, segmenter_weights, max_size, test_every: the ``prepare``
            options of the same names, for every capture (None: prepare's default).
        every, fps: video captures: one frame per N, or about F frames per second.
        extra_args: further ``prepare`` arguments, for every capture.
    """

    depth_from: str | None = None
    depth_scale: float | None = None
    intrinsics: str | None = None
    poses: str = "auto"
    segmenter: str = "classical"
    segmenter_weights: str | None = None
    every: int | None = None
    fps: float | None = None
    max_size: int | None = None
    test_every: int | None = None
    extra_args: tuple[str, ...] = ()

    def check(self) -> None:
        """``prepare``'s one-line error for options that no capture could use, before anything runs."""
        from .prepare import PrepareOptions

        if self.segmenter == "import":
            raise UsageError("batch: --segmenter import needs masks per capture; prepare such captures one by one")
        from .prepare.segmenters.hf import MODEL_ID

        for flag, path, kind in (("--intrinsics", self.intrinsics, "file"), ("--segmenter-weights", self.segmenter_weights, "folder")):
            if flag == "--segmenter-weights" and path is not None and not Path(path).exists() and MODEL_ID.fullmatch(path):
                continue  # a model id, resolved by prepare (local Hugging Face cache or download)
            if path is not None and not (Path(path).is_file() if kind == "file" else Path(path).is_dir()):
                raise ClusteringSDFError(f"batch: {flag} {path}: no such {kind}")
        common = {"depth_scale": self.depth_scale, "intrinsics": _optional_path(self.intrinsics), "poses": self.poses,
                  "segmenter": self.segmenter, "segmenter_weights": self.segmenter_weights,
                  "max_size": self.max_size, "test_every": self.test_every}
        common = {key: value for key, value in common.items() if value is not None}
        PrepareOptions(out=Path("scene"), images=Path("images"), depth=Path("depth") if self.depth_from else None, **common)
        PrepareOptions(out=Path("scene"), video=Path("video"), every=self.every, fps=self.fps, **common)

    def args_for(self, capture: Path, device: str) -> list[str]:
        """``prepare``'s arguments for one capture, all but ``--out`` and ``--threads``; a missing
        capture or depth folder is a one-line error."""
        from .prepare.poses import poses_path_in

        capture = Path(capture).resolve()
        if capture.is_dir():
            args = ["--images", str(capture)]
            if self.depth_from:
                depth = capture / self.depth_from
                if not depth.is_dir():
                    raise ClusteringSDFError(f"batch: {capture}: no depth folder '{self.depth_from}' in it (--depth-from {self.depth_from})")
                args += ["--depth", str(depth)]
            poses_path = poses_path_in(self.poses, capture)
            args += ["--poses-path", str(poses_path)] if poses_path is not None else []
        elif capture.is_file():
            args = ["--video", str(capture)]
            args += ["--every", str(self.every)] if self.every is not None else []
            args += ["--fps", str(self.fps)] if self.fps is not None else []
        else:
            raise ClusteringSDFError(f"batch: {capture}: no such capture (a folder of images or a video file)")
        args += ["--poses", self.poses, "--segmenter", self.segmenter]
        for flag, value in (("--depth-scale", self.depth_scale if self.depth_from else None), ("--intrinsics", self.intrinsics),
                            ("--segmenter-weights", self.segmenter_weights), ("--max-size", self.max_size), ("--test-every", self.test_every)):
            if value is not None:
                local = flag == "--intrinsics" or flag == "--segmenter-weights" and Path(value).exists()  # else a model id
                args += [flag, str(Path(value).resolve()) if local else str(value)]
        if self.segmenter in ("mask2former", "sam"):
            args += ["--device", device]
        return args + list(self.extra_args)


def _optional_path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs.

    Attributes:
        workers: scenes trained at once (Ray tasks in flight).
        cpus_per_task: CPU share of a task, also its torch/OpenMP threads; None = the machine's (or the
            cluster's) CPUs divided by ``workers``.
        gpus_per_task: GPUs a task asks Ray for; None = 1 with ``device="cuda"``, or with ``"auto"`` on a
            cluster that has GPUs, else 0.
        device: ``--device`` of every command (auto, cpu, cuda).
        train_args: further ``train`` options, e.g. ``("--preset", "cpu", "--iters", "2000")``.
        mesh_resolution: ``mesh --resolution`` after training; 0 = keep the report's coarse meshes.
        address: an existing Ray cluster (``ray.init(address=...)``); None = a local Ray instance.
        max_attempts: tries per scene in one batch (the first plus retries).
        capture: the positionals are captures, prepared with these options first; None = scene folders.
    """

    workers: int = 1
    cpus_per_task: int | None = None
    gpus_per_task: float | None = None
    device: str = "auto"
    train_args: tuple[str, ...] = ()
    mesh_resolution: int = 256
    address: str | None = None
    max_attempts: int = 2
    capture: CaptureOptions | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"batch: --workers must be at least 1, got {self.workers}")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise UsageError(f"batch: --cpus-per-task must be at least 1, got {self.cpus_per_task}")
        if self.gpus_per_task is not None and self.gpus_per_task < 0:
            raise UsageError(f"batch: --gpus-per-task must not be negative, got {self.gpus_per_task}")
        if self.mesh_resolution < 0:
            raise UsageError(f"batch: --mesh-resolution must be 0 (no extra meshes) or positive, got {self.mesh_resolution}")
        if self.max_attempts < 1:
            raise ClusteringSDFError(f"batch: max_attempts must be at least 1, got {self.max_attempts}")

    def gpus(self, cluster_gpus: float = 0.0) -> float:
        """GPUs a task asks for on a cluster with ``cluster_gpus`` GPUs in all: a task that asks for none
        sees none (Ray hides the others), so ``--device auto`` asks for one where there are any."""
        if self.gpus_per_task is not None:
            return self.gpus_per_task
        return 1.0 if self.device == "cuda" or (self.device == "auto" and cluster_gpus > 0) else 0.0


@dataclass(frozen=True)
class SceneJob:
    """One scene's job as sent to a worker (plain values only: it crosses process boundaries)."""

    name: str
    scene: str  # absolute scene folder (with a capture: where it is prepared)
    runs: str  # absolute RUNS folder
    threads: int
    device: str
    train_args: tuple[str, ...]
    mesh_resolution: int
    attempt: int
    prepare_args: tuple[str, ...] = ()  # a capture's ``prepare`` arguments (without --out, --threads); () = a scene

    @property
    def run(self) -> Path:
        return Path(self.runs) / self.name

    def steps(self) -> list[tuple[str, list[str]]]:
        """(step name, CLI arguments): ``prepare`` for a capture, then those of :func:`step_names`."""
        run, device = str(self.run), self.device
        args = [["train", "--data", self.scene, "--out", run, "--eval", "--resume", "--threads", str(self.threads), "--device", device,
                 "--quiet", *self.train_args]]
        if self.mesh_resolution > 0:
            args.append(["mesh", "--run", run, "--resolution", str(self.mesh_resolution), "--device", device])
            args.append(["report", "--run", run, "--device", device, "--quiet"])
        steps = list(zip(step_names(self.mesh_resolution), args))
        if self.prepare_args:
            steps.insert(0, ("prepare", ["prepare", *self.prepare_args, "--out", self.scene, "--threads", str(self.threads)]))
        return steps


def step_names(mesh_resolution: int) -> list[str]:
    """A job's steps after ``prepare``; a name says what the step made (the mesh resolution), so that a
    batch started again with another ``--mesh-resolution`` meshes again."""
    return ["train"] + ([f"mesh-{mesh_resolution}", f"report-{mesh_resolution}"] if mesh_resolution > 0 else [])


# ------------------------------------------------------------------------------------ files


def job_paths(runs: Path, name: str) -> dict[str, Path]:
    folder = Path(runs) / JOB_DIR
    return {"log": folder / f"{name}.log", "record": folder / f"{name}.json", "lock": folder / f"{name}.lock"}


def _timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing or unreadable (a state file is rewritten)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_prepared(runs: Path, name: str) -> bool:
    """Whether the capture ``name`` has its prepared scene (``prepare`` moves a complete one into place)."""
    return (Path(runs) / SCENES_DIR / name / "splits.json").is_file()


def finished_steps(runs: Path, name: str) -> list[str]:
    """Steps the scene's record lists as finished whose outputs are still there (a run folder
    deleted or moved aside since then starts over), and ``prepare`` when the prepared scene is there."""
    record = _read_json(job_paths(runs, name)["record"]) or {}
    steps = [s for s in record.get("steps", []) if isinstance(s, str) and s != "prepare"]
    prepared = ["prepare"] if is_prepared(runs, name) else []
    run = Path(runs) / name
    if not ((run / "eval" / "metrics.json").is_file() and (run / "report.html").is_file()):
        return prepared
    return prepared + steps


def recorded_device(runs: Path, name: str) -> str | None:
    """The device the scene's training reported (``cuda:0 (NVIDIA H100 ...)``, ``cpu (2 threads)``), as the job recorded it."""
    device = (_read_json(job_paths(runs, name)["record"]) or {}).get("device")
    return device if isinstance(device, str) else None


def is_finished(runs: Path, name: str, mesh_resolution: int) -> bool:
    done = finished_steps(runs, name)
    return all(step in done for step in step_names(mesh_resolution))


# ------------------------------------------------------------------------------------ the job


def die_with_job() -> None:
    """In a command that a job started (:data:`PARENT_ENV` names the job's process): ask Linux for
    SIGTERM when the job's process dies (training then saves a checkpoint and exits), and stop at
    once if it died already. The variable is removed, so that the command's own subprocesses are
    not taken for job commands. Does nothing in any other process."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != int(parent):
        sys.exit(143)


def _error_line(text: str, code: int) -> str:
    """The command's one-line error: its last ``error:`` line, else its last line, else the exit code."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("error:", "internal error:")):
            return line
    if code < 0:
        return f"killed by signal {-code}"
    return lines[-1] if lines else f"exit code {code}"


def _device_line(text: str) -> str | None:
    """The device of a ``train`` command's output (its ``device: ...`` line, the last one), or None."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    found = [line[len(DEVICE_PREFIX):].strip() for line in lines if line.startswith(DEVICE_PREFIX)]
    return found[-1] if found else None


def _try_lock(fd: int, shared: bool = False) -> bool:
    """Take the ``flock`` of an open file (exclusive, or ``shared``) without waiting; False while
    another process holds it in a way that excludes this one."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _SceneLock:
    """Exclusive lock of one scene (``flock``); the job's commands inherit it, so it stays held while
    an orphaned command of a dead job is still stopping."""

    def __init__(self, path: Path, log: Callable[[str], None]) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_WAIT_S
        waited = False
        while not _try_lock(self.fd):
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise ClusteringSDFError(f"{path}: still held by an earlier command of this scene after {LOCK_WAIT_S:.0f} s")
            if not waited:
                log(f"waiting for an earlier command of this scene to stop ({path} is held)")
                waited = True
            time.sleep(0.5)

    def close(self) -> None:
        os.close(self.fd)


def _run_command(args: list[str], threads: int, log_path: Path, lock_fd: int) -> tuple[int, str]:
    """Run ``python -m clusteringsdf ARGS`` with the task's thread share; returns the exit code and
    the command's output (its last 64 KiB). On KeyboardInterrupt (Ctrl-C, a cancelled Ray task) the
    command gets SIGTERM and a minute to save its checkpoint."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env[PARENT_ENV] = str(os.getpid())
    with open(log_path, "ab") as handle:
        handle.write(f"$ clusteringsdf {' '.join(args)}\n".encode())
        handle.flush()
        start = handle.tell()
        process = subprocess.Popen([sys.executable, "-m", "clusteringsdf", *args], stdin=subprocess.DEVNULL,
                                   stdout=handle, stderr=subprocess.STDOUT, env=env, pass_fds=(lock_fd,))
        try:
            code = _wait(process)
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    with open(log_path, "rb") as handle:
        handle.seek(max(start, handle.seek(0, os.SEEK_END) - 65536))
        return code, handle.read().decode(errors="replace")


def _wait(process: subprocess.Popen) -> int:
    """Wait in short steps: a blocking wait would hold off KeyboardInterrupt (Ctrl-C, Ray's cancel)."""
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass


def _remove_stale_prepares(job: SceneJob) -> None:
    """Remove what a killed ``prepare`` of this capture left beside its output (its temporary folder);
    the scene lock held here keeps any other ``prepare`` of it from running."""
    for stale in Path(job.scene).parent.glob(f".{job.name}.prepare-*"):
        shutil.rmtree(stale, ignore_errors=True)


def run_scene_job(job: SceneJob) -> dict[str, Any]:
    """Run the job's remaining steps; returns ``{"name", "status" ("done" | "failed"), "seconds",
    "error", "steps", "device"}``. Runs in a Ray worker or in the driver."""
    start = time.monotonic()
    paths = job_paths(Path(job.runs), job.name)
    paths["log"].parent.mkdir(parents=True, exist_ok=True)

    def note(message: str) -> None:
        with open(paths["log"], "a") as handle:
            handle.write(f"# {_timestamp()} {message}\n")

    def result(status: str, error: str | None = None) -> dict[str, Any]:
        return {"name": job.name, "status": status, "seconds": round(time.monotonic() - start, 1), "error": error, "steps": list(steps),
                "device": device}

    steps: list[str] = []
    device = recorded_device(Path(job.runs), job.name)
    note(f"attempt {job.attempt} on {os.uname().nodename}, {job.threads} thread(s)")
    try:
        lock = _SceneLock(paths["lock"], note)
    except ClusteringSDFError as exc:
        return result("failed", f"error: {exc}")
    # Ray's cancel and Ctrl-C arrive as SIGINT: a worker started from a background shell ignores it
    ignored = _main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        steps = finished_steps(Path(job.runs), job.name)
        for step, args in job.steps():
            if step in steps:
                continue
            if step == "prepare":
                _remove_stale_prepares(job)
            code, output = _run_command(args, job.threads, paths["log"], lock.fd)
            if step == "train":
                device = _device_line(output) or device
            if code != 0:
                error = _error_line(output, code)
                note(f"{step} failed: {error}")
                return result("failed", error)
            steps.append(step)
            write_json_atomic(paths["record"], {"steps": steps, "device": device})
    finally:
        lock.close()
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return result("done")


# ------------------------------------------------------------------------------------ runners


class _SequentialRunner:
    """Runs one job at a time in this process."""

    description = "one after another"

    def __init__(self) -> None:
        self.queue: deque[SceneJob] = deque()

    def submit(self, job: SceneJob) -> SceneJob:
        self.queue.append(job)
        return job

    def wait_any(self, handles: list) -> tuple[Any, dict[str, Any]]:
        job = self.queue.popleft()
        return job, run_scene_job(job)

    def cancel(self, handles: list) -> None:
        self.queue.clear()

    def close(self) -> None:
        pass


class _RayRunner:
    """Runs jobs as Ray tasks, each asking for its CPU (and GPU) share."""

    def __init__(self, ray, options: BatchOptions) -> None:
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            import logging

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
            try:
                if options.address:
                    ray.init(address=options.address, **common)
                else:  # GPUs: Ray's own count
                    cpus = options.cpus_per_task or max(1, _available_cpus() // options.workers)
                    ray.init(num_cpus=cpus * options.workers, object_store_memory=128 * 1024**2, **common)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
                where = f"connect to the Ray cluster at {options.address}" if options.address else "start a local Ray instance"
                raise ClusteringSDFError(f"batch: cannot {where}: {type(exc).__name__}: {exc}") from None
            self.started = True
        try:
            nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
            largest = max((n.get("CPU", 0) for n in nodes), default=0)
            resources = ray.cluster_resources()
            self.cpus = options.cpus_per_task or max(1, int(min(largest, resources.get("CPU", 1) // options.workers)))
            self.gpus = options.gpus(resources.get("GPU", 0.0))
            if self.cpus > largest:
                raise ClusteringSDFError(f"batch: a task asks for {self.cpus} CPUs but the largest Ray node has {largest:g}")
            if self.gpus > max((n.get("GPU", 0) for n in nodes), default=0):
                raise ClusteringSDFError(f"batch: a task asks for {self.gpus:g} GPU(s) but no Ray node has that many (--device cuda needs a GPU; see --gpus-per-task)")
        except ClusteringSDFError:
            self.close()
            raise
        self.remote = ray.remote(run_scene_job)
        where = f"the Ray cluster at {options.address}" if options.address else ("a local Ray instance" if self.started else "this process's Ray instance")
        share = f"{self.cpus} CPU(s)" + (f" and {self.gpus:g} GPU(s)" if self.gpus else "")
        self.description = f"as Ray tasks on {where}, {options.workers} at once, {share} each"
        cluster_gpus = resources.get("GPU", 0.0)
        if self.gpus and options.gpus_per_task is None and options.device == "auto":
            self.description += f" (--device auto: the cluster has {cluster_gpus:g} GPU(s))"
        if self.gpus and cluster_gpus // self.gpus < options.workers:
            self.description += f"; only {int(cluster_gpus // self.gpus)} fit on the GPUs at once"

    def submit(self, job: SceneJob):
        return self.remote.options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0, name=f"clusteringsdf-batch:{job.name}").remote(job)

    def wait_any(self, handles: list) -> tuple[Any, dict[str, Any]]:
        ready: list = []
        while not ready:  # in short steps: a blocking wait would hold off KeyboardInterrupt and SIGTERM
            ready, _ = self.ray.wait(handles, num_returns=1, timeout=0.5)
        try:
            return ready[0], self.ray.get(ready[0])
        except self.ray.exceptions.RayError as exc:  # the worker died, the node went away, ...
            first = (str(exc).strip().splitlines() or [""])[0]
            return ready[0], {"status": "failed", "seconds": 0.0, "error": f"Ray task failed: {type(exc).__name__}: {first}", "steps": []}

    def cancel(self, handles: list) -> None:
        """Stop running jobs: their commands get SIGTERM and save a checkpoint."""
        for handle in handles:
            self.ray.cancel(handle)
        for handle in handles:
            try:
                self.ray.get(handle, timeout=90)
            except Exception:  # noqa: BLE001 - a cancelled task raises; all that matters is that it ended
                pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------ summary


@dataclass
class SceneEntry:
    """The driver's record of one scene (``batch_state.json``)."""

    scene: str  # the scene folder given (with --prepare: the capture)
    status: str = "queued"  # queued | running | done | failed | interrupted
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None
    steps: list[str] = field(default_factory=list)
    device: str | None = None  # what training reported: "cuda:0 (NVIDIA H100 ..., 80 GiB)", "cpu (2 threads)"


def _scores(run: Path) -> dict[str, float | None]:
    metrics = _read_json(run / "eval" / "metrics.json") or {}
    return {key: metrics.get(key) for key in SCORE_KEYS if key in metrics}


def write_summary(runs: Path, entries: dict[str, SceneEntry]) -> dict[str, Any]:
    """Write ``batch_summary.json`` and ``index.html``; returns the summary."""
    rows = []
    for name, entry in entries.items():
        run = runs / name
        report = run / "report.html"
        rows.append({
            "name": name,
            "scene": entry.scene,
            "status": entry.status,
            "attempts": entry.attempts,
            "seconds": round(entry.seconds, 1),
            "device": entry.device or recorded_device(runs, name),
            "scores": _scores(run) if entry.status == "done" else {},
            "error": entry.error,
            "run": name,
            "report": f"{name}/report.html" if report.is_file() else None,
            "log": f"{JOB_DIR}/{name}.log",
        })
    counts = {status: sum(r["status"] == status for r in rows) for status in ("done", "failed", "queued", "running", "interrupted")}
    summary = {"runs": str(runs), "updated": _timestamp(), "counts": counts, "scenes": rows}
    write_json_atomic(runs / SUMMARY_FILE, summary)
    write_text_atomic(runs / INDEX_FILE, _index_html(summary))
    return summary


def save_state(runs: Path, options: BatchOptions, entries: dict[str, SceneEntry]) -> None:
    """Write ``batch_state.json``, ``batch_summary.json`` and ``index.html``."""
    write_json_atomic(runs / STATE_FILE, {"options": asdict(options), "updated": _timestamp(),
                                          "scenes": {n: asdict(e) for n, e in entries.items()}})
    write_summary(runs, entries)


def _index_html(summary: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))

    columns = ("pq", "pq_things", "pq_stuff", "miou", "psnr")
    head = "".join(f"<th>{c}</th>" for c in ("scene", "status", "attempts", "minutes", "device", *columns, "report", "log", "error"))
    body = []
    for row in summary["scenes"]:
        report = f'<a href="{html.escape(row["report"])}">report</a>' if row["report"] else "-"
        scores = "".join(f"<td>{cell(row['scores'].get(c))}</td>" for c in columns)
        body.append(
            f'<tr class="{html.escape(row["status"])}"><td>{html.escape(row["name"])}</td><td>{html.escape(row["status"])}</td>'
            f"<td>{row['attempts']}</td><td>{row['seconds'] / 60:.1f}</td><td>{cell(row.get('device'))}</td>{scores}<td>{report}</td>"
            f'<td><a href="{html.escape(row["log"])}">log</a></td><td>{cell(row["error"])}</td></tr>'
        )
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items() if n)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>clusteringsdf batch</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "tr.failed{background:#fdd}tr.done{background:#efe}</style></head><body>\n"
        f"<h1>clusteringsdf batch</h1><p>{html.escape(summary['runs'])}: {html.escape(counts)} (updated {html.escape(summary['updated'])})</p>\n"
        f"<table><tr>{head}</tr>\n" + "\n".join(body) + "\n</table></body></html>\n"
    )


# ------------------------------------------------------------------------------------ driver


def scene_names(scenes: list[Path], *, captures: bool = False) -> list[str]:
    """Run folder names: the scene folders' names (a video capture's: its file name without the
    suffix); two scenes with one name are a one-line error."""
    reserved = (JOB_DIR, STATE_FILE, SUMMARY_FILE, INDEX_FILE) + ((SCENES_DIR,) if captures else ())
    names: dict[str, Path] = {}
    for scene in scenes:
        path = Path(scene).resolve()
        name = path.stem if path.is_file() else path.name
        if name in reserved:
            raise ClusteringSDFError(f"batch: {scene}: the name '{name}' is taken by the batch's own files in RUNS; rename it")
        if name in names:
            raise ClusteringSDFError(f"batch: {names[name]} and {scene} would share the run folder '{name}'; give scenes distinct folder names")
        names[name] = Path(scene)
    return list(names)


class _BatchLock:
    """One driver per RUNS folder at a time, or any number of ``--task-index`` tasks (``flock`` on
    RUNS/batch/driver.lock, exclusive or ``shared``, released on any exit)."""

    def __init__(self, runs: Path, shared: bool = False) -> None:
        path = runs / JOB_DIR / "driver.lock"
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self.fd, shared):
            os.close(self.fd)
            other = "a batch without --task-index" if shared else "another batch"
            raise ClusteringSDFError(f"{runs}: {other} is running on this folder")

    def close(self) -> None:
        os.close(self.fd)


def _make_runner(options: BatchOptions, log: Callable[[str], None]):
    try:
        import ray
    except ImportError:
        if options.address:
            raise ClusteringSDFError('batch: --address needs Ray: pip install -e ".[cluster]"') from None
        note = f" (--workers {options.workers} needs Ray)" if options.workers > 1 else ""
        log(f'Ray is not installed (pip install -e ".[cluster]"): running the scenes one after another{note}')
        return _SequentialRunner()
    return _RayRunner(ray, options)


def _check_inputs(scenes: list[Path], options: BatchOptions, task_index: int | None) -> dict[str, Path]:
    """Run folder name -> absolute scene folder (or capture) of every scene given; bad input
    (names, captures, prepare options, the task index) fails here, once, before anything runs."""
    if not scenes:
        raise ClusteringSDFError("batch: give at least one scene folder" + (" or capture" if options.capture else ""))
    names = scene_names(scenes, captures=options.capture is not None)
    inputs = dict(zip(names, (Path(s).resolve() for s in scenes)))
    if options.capture is not None:
        options.capture.check()
        for source in inputs.values():
            options.capture.args_for(source, options.device)
    else:
        from .data.layout import not_a_scene

        for source in inputs.values():
            if not_a_scene(source) is not None:
                raise UsageError(f"batch: {source} is a capture, not a prepared scene; add --prepare to prepare each capture first")
    if task_index is not None:
        if not 0 <= task_index < len(names):
            raise UsageError(f"batch: --task-index {task_index} is not one of the {len(names)} scene(s) given (0 to {len(names) - 1})")
        if options.address:
            raise UsageError("batch: --task-index runs its scene here, without Ray; drop --address")
    return inputs


def run_batch(scenes: list[Path], runs: Path, options: BatchOptions, log: Callable[[str], None] | None = None, *,
              task_index: int | None = None) -> int:
    """Run every scene's job (or, with ``task_index``, only that scene's, here); returns 0 when all
    finished, 1 when some failed, 130 when interrupted."""
    clock = time.monotonic()

    def say(message: str) -> None:
        elapsed = int(time.monotonic() - clock)
        line = f"[batch {elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {message}"
        (log or (lambda text: print(text, flush=True)))(line)

    inputs = _check_inputs(scenes, options, task_index)
    runs = Path(runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    (runs / JOB_DIR).mkdir(exist_ok=True)
    lock = _BatchLock(runs, shared=task_index is not None)
    try:
        if task_index is not None:
            return _run_task(inputs, runs, options, task_index, say=say)
        return _drive(inputs, runs, options, say)
    finally:
        lock.close()


def _drive(scenes: dict[str, Path], runs: Path, options: BatchOptions, say: Callable[[str], None]) -> int:
    """Queue the scenes not finished earlier and run their jobs; returns the batch's exit code."""
    driver = _Driver(scenes, runs, options, say)
    if not driver.queue_unfinished():
        say(f"nothing to run: every scene finished earlier -> {runs / SUMMARY_FILE}, {runs / INDEX_FILE}")
        return 0
    return driver.run(_make_runner(options, say))


def _entries_from_state(state: dict[str, Any], scenes: dict[str, Path]) -> dict[str, SceneEntry]:
    """Each scene's entry, with the attempts, seconds, status, error and device of the previous batch's state."""
    known = state.get("scenes", {}) if isinstance(state.get("scenes"), dict) else {}
    entries: dict[str, SceneEntry] = {}
    for name, scene in scenes.items():
        old = known.get(name) if isinstance(known.get(name), dict) else {}
        entries[name] = SceneEntry(scene=str(scene), attempts=int(old.get("attempts", 0)), seconds=float(old.get("seconds", 0.0)),
                                   status=str(old.get("status", "queued")), error=old.get("error"), device=old.get("device"))
    return entries


def _make_job(name: str, source: Path, runs: Path, options: BatchOptions, *, threads: int, attempt: int) -> SceneJob:
    """The job of one scene, or of one capture (prepared into RUNS/scenes/<name> first)."""
    scene, prepare = source, ()
    if options.capture is not None:
        scene, prepare = runs / SCENES_DIR / name, tuple(options.capture.args_for(source, options.device))
    return SceneJob(name, str(scene), str(runs), threads, options.device, tuple(options.train_args), options.mesh_resolution, attempt,
                    prepare_args=prepare)


def _take_result(entry: SceneEntry, result: dict[str, Any]) -> None:
    """A job's result in the scene's entry: done, or failed with the job's one-line error."""
    entry.seconds += float(result.get("seconds", 0.0))
    entry.steps = list(result.get("steps", []))
    entry.device = result.get("device") or entry.device
    if result["status"] == "done":
        entry.status, entry.error = "done", None
    else:
        entry.status, entry.error = "failed", result.get("error")


class _Driver:
    """The driver's side of a batch: the scenes' entries (saved to ``batch_state.json`` and the
    summary after every change), the queue, the jobs in flight and the retries of failed ones."""

    def __init__(self, scenes: dict[str, Path], runs: Path, options: BatchOptions, say: Callable[[str], None]) -> None:
        self.scenes = scenes
        self.runs = runs
        self.options = options
        self.say = say
        state = _read_json(runs / STATE_FILE) or {}
        self.entries = _entries_from_state(state, scenes)
        if isinstance(state.get("options"), dict) and state["options"] != json.loads(json.dumps(asdict(options))):
            say(f"note: the options differ from the previous batch on {runs}; finished runs are kept as they are")
        self.queue: deque[str] = deque()
        self.running: dict[Any, str] = {}
        self.tries: dict[str, int] = {}
        self.durations: list[float] = []
        self.workers = 1  # jobs in flight at once; :meth:`run` sets it from its runner

    def save(self) -> None:
        """Write ``batch_state.json``, ``batch_summary.json`` and ``index.html``."""
        save_state(self.runs, self.options, self.entries)

    def queue_unfinished(self) -> bool:
        """Queue every scene not finished earlier and save the state; False when none is left."""
        for name in self.scenes:
            entry = self.entries[name]
            if is_finished(self.runs, name, self.options.mesh_resolution):
                entry.status, entry.error = "done", None
                self.say(f"{name}: finished earlier, skipped")
                continue
            if entry.status in ("running", "interrupted") or (self.runs / name / "checkpoints").is_dir():
                self.say(f"{name}: interrupted earlier, will resume")
            entry.status, entry.error = "queued", None
            self.queue.append(name)
        self.save()
        return bool(self.queue)

    def run(self, runner: _SequentialRunner | _RayRunner) -> int:
        """Run the queued jobs on ``runner`` until none is left; 130 when interrupted (Ctrl-C, SIGTERM)."""
        threads = getattr(runner, "cpus", None) or self.options.cpus_per_task or _available_cpus()
        self.workers = self.options.workers if isinstance(runner, _RayRunner) else 1
        self.say(f"{len(self.queue)} of {len(self.scenes)} scene(s) to run {runner.description}; logs in {self.runs / JOB_DIR}")
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
        try:
            while self.queue or self.running:
                self._start_jobs(runner, threads)
                handle, result = runner.wait_any(list(self.running))
                self._record(self.running.pop(handle), result)
                self.save()
        except KeyboardInterrupt:
            self._stop(runner)
            return 130
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            runner.close()
        done = sum(e.status == "done" for e in self.entries.values())
        failed = [n for n, e in self.entries.items() if e.status == "failed"]
        self.say(f"batch finished: {done} done, {len(failed)} failed -> {self.runs / SUMMARY_FILE}, {self.runs / INDEX_FILE}")
        return 1 if failed else 0

    def _start_jobs(self, runner: _SequentialRunner | _RayRunner, threads: int) -> None:
        """Submit queued scenes while fewer than ``workers`` jobs are in flight."""
        while self.queue and len(self.running) < self.workers:
            name = self.queue.popleft()
            entry = self.entries[name]
            self.tries[name] = self.tries.get(name, 0) + 1
            entry.status = "running"
            job = _make_job(name, self.scenes[name], self.runs, self.options, threads=threads, attempt=entry.attempts + 1)
            self.running[runner.submit(job)] = name
            entry.attempts += 1
            self.say(f"{name}: started (attempt {self.tries[name]} of {self.options.max_attempts})")
            self.save()

    def _record(self, name: str, result: dict[str, Any]) -> None:
        """Take a finished job's result: the scene is done, queued again, or failed for good."""
        entry = self.entries[name]
        _take_result(entry, result)
        if entry.status == "done":
            self.durations.append(float(result.get("seconds", 0.0)))
            self.say(f"{name}: {_finished_line(self.runs, name, result)} ({self._progress()})")
        elif self.tries[name] < self.options.max_attempts:
            entry.status = "queued"
            self.queue.append(name)
            self.say(f"{name}: failed, will try again: {entry.error}")
        else:
            self.say(f"{name}: failed after {self.tries[name]} attempt(s): {entry.error} ({self._progress()})")

    def _stop(self, runner: _SequentialRunner | _RayRunner) -> None:
        """Cancel the jobs in flight (their commands save a checkpoint) and mark their scenes interrupted."""
        self.say(f"interrupted: stopping {len(self.running)} running scene(s) (their checkpoints are saved; run the same command again to resume)")
        runner.cancel(list(self.running))
        for name in self.running.values():
            self.entries[name].status = "interrupted"
        self.save()

    def _progress(self) -> str:
        """'3/5 done, 1 failed, 1 running, 0 queued, about 4 min left'."""
        done = sum(e.status == "done" for e in self.entries.values())
        failed = sum(e.status == "failed" for e in self.entries.values())
        text = f"{done}/{len(self.entries)} done, {failed} failed, {len(self.running)} running, {len(self.queue)} queued"
        left = len(self.queue) + len(self.running)
        if self.durations and left:
            seconds = sum(self.durations) / len(self.durations) * left / max(self.workers, 1)
            text += f", about {seconds / 60:.0f} min left" if seconds >= 90 else f", about {seconds:.0f} s left"
        return text


def _finished_line(runs: Path, name: str, result: dict[str, Any]) -> str:
    """'finished in 312 s on cuda:0 (NVIDIA H100 ...): pq 0.812, miou 0.874'."""
    scores = _scores(runs / name)
    shown = ", ".join(f"{k} {scores[k]:.3f}" for k in ("pq", "miou") if isinstance(scores.get(k), (int, float)))
    where = f" on {result['device']}" if result.get("device") else ""
    return f"finished in {result.get('seconds', 0):.0f} s{where}{': ' + shown if shown else ''}"


# ------------------------------------------------------------------------------------ one task


class _Board:
    """The batch files as ``--task-index`` tasks share them: a task reads the state, changes its own
    scene's entry and writes the state, the summary and the page under a short lock
    (RUNS/batch/summary.lock), so tasks that finish at the same time keep each other's rows."""

    def __init__(self, scenes: dict[str, Path], runs: Path, options: BatchOptions) -> None:
        self.scenes, self.runs, self.options = scenes, runs, options

    def update(self, name: str, change: Callable[[SceneEntry], None]) -> SceneEntry:
        """Apply ``change`` to the scene's entry and save the batch files; returns the entry."""
        fd = os.open(self.runs / JOB_DIR / SUMMARY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = _entries_from_state(_read_json(self.runs / STATE_FILE) or {}, self.scenes)
            change(entries[name])
            save_state(self.runs, self.options, entries)
            return entries[name]
        finally:
            os.close(fd)


def _set_status(status: str) -> Callable[[SceneEntry], None]:
    """A change for :meth:`_Board.update`: the scene gets ``status`` and no error; "running" counts an attempt."""

    def change(entry: SceneEntry) -> None:
        entry.status, entry.error = status, None
        if status == "running":
            entry.attempts += 1

    return change


def _run_task(scenes: dict[str, Path], runs: Path, options: BatchOptions, index: int, *, say: Callable[[str], None]) -> int:
    """``--task-index``: run the scene's job here, without Ray, up to ``max_attempts`` times, and merge
    its row into the batch files after every change; 0 done, 1 failed, 130 interrupted (SIGTERM)."""
    name = list(scenes)[index]
    board = _Board(scenes, runs, options)
    if is_finished(runs, name, options.mesh_resolution):
        board.update(name, _set_status("done"))
        say(f"{name}: finished earlier, skipped -> {runs / SUMMARY_FILE}")
        return 0
    threads = options.cpus_per_task or _available_cpus()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        for attempt in range(1, options.max_attempts + 1):
            entry = board.update(name, _set_status("running"))
            say(f"{name}: started (task {index}, attempt {attempt} of {options.max_attempts}, {threads} thread(s)); log in {runs / JOB_DIR}")
            result = run_scene_job(_make_job(name, scenes[name], runs, options, threads=threads, attempt=entry.attempts))
            entry = board.update(name, lambda entry: _take_result(entry, result))
            if entry.status == "done":
                say(f"{name}: {_finished_line(runs, name, result)} -> {runs / SUMMARY_FILE}")
                return 0
            say(f"{name}: failed{', will try again' if attempt < options.max_attempts else ''}: {entry.error}")
        return 1
    except KeyboardInterrupt:
        board.update(name, _set_status("interrupted"))
        say(f"{name}: interrupted (its checkpoint is saved; run the same command again to resume)")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
