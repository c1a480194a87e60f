"""The browser viewer of a run: a viser scene with the run's meshes and cameras, a GUI panel and
its callbacks. Everything about the run comes through :mod:`.run_access`.

Scene tree::

    /background                    the scene mesh minus the objects
    /objects/<id>_<class>          one clickable mesh per object
    /cameras/train/<frame>         one frustum with its image per training camera
    /cameras/test/<frame>          ... per test camera (clicking shows the report strip)
    /selection/box, /selection/label   the highlight of the selected object

viser serves its web client from its own package (one self-contained page: no fonts, scripts or
environment maps from elsewhere), so the viewer works without internet. Its public share-link
tunnel is switched off: the viewer is reachable only where ``--host`` binds it.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ClusteringSDFError
from .run_access import COLOURINGS, ObjectInfo, RunAccess, open_run, pinhole_intrinsics

COLOURING_LABELS = {"instance": "instance", "class": "class", "field": "field colour"}
TRAIN_COLOUR = (90, 90, 90)
TEST_COLOUR = (255, 140, 0)
HIGHLIGHT_COLOUR = (255, 215, 0)
NO_SELECTION = "(none)"


def require_viser() -> Any:
    """The viser module, or a one-line error saying how to install it."""
    try:
        import viser
    except ImportError:
        raise ClusteringSDFError('the viewer needs viser: pip install -e ".[viewer]"') from None
    return viser


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raise a one-line error when ``host:port`` cannot be bound (in use, or not an address of
    this machine). viser itself would silently move to the next free port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ClusteringSDFError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                raise ClusteringSDFError(f"--port {port}: already in use on {host} (choose another --port)") from None
            raise ClusteringSDFError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def _bbox_edges(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(12, 2, 3) end points of the edges of an axis-aligned box."""
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
    return np.stack([corners[[a, b]] for a, b in pairs])


def _side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one height next to each other with a white gap: uint8 (H, W, 3)."""
    blank = np.full((images[0].shape[0], gap, 3), 255, np.uint8)
    parts = [images[0]]
    for image in images[1:]:
        parts += [blank, image]
    return np.concatenate(parts, axis=1)


def _srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> linear floats in [0, 1] (the sRGB transfer function)."""
    c = colors.astype(np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _object_label(info: ObjectInfo) -> str:
    """'07 chair 52×48×81 cm': id, class and bounding-box size (short enough for a GUI label)."""
    size = "×".join(f"{100 * v:.0f}" for v in info.size)
    return f"{info.id:02d} {info.class_name} {size} cm"


@dataclass
class RenderResult:
    """What "render from here" produced: the pictures (uint8 (H, W, 3) each) and the seconds taken."""

    images: dict[str, np.ndarray]
    seconds: float


class RunViewer:
    """A running viewer of one opened run. ``url`` is its address; ``stop()`` ends it.

    The scene and GUI handles are kept for callers and tests: ``object_nodes`` {object id:
    handle}, ``camera_nodes`` {frame: handle}, ``background_node``.
    """

    def __init__(self, access: RunAccess, host: str = "127.0.0.1", port: int = 8080, render_height: int = 120) -> None:
        viser = require_viser()
        self._viser = viser
        check_port_free(host, port)
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own banner
            self.server = viser.ViserServer(host=host, port=port, label=f"ClusteringSDF: {access.name}", verbose=False)
        self.server.request_share_url = self._refuse_share_url  # no public tunnel, ever
        self.host = host
        self.access = access
        self.render_height = render_height
        self._lock = threading.RLock()
        self._objects = {o.id: o for o in access.objects()}
        self._cameras = {c.frame: c for c in access.cameras()}
        self.object_nodes: dict[int, Any] = {}
        self.camera_nodes: dict[str, Any] = {}
        self.background_node = None
        self.colouring = "instance"
        self.selected_object: int | None = None
        self.selected_camera: str | None = None
        self.last_render: RenderResult | None = None
        self._highlight = None
        self._syncing = False
        try:
            if port and self.port != port:  # lost a race for the port: viser moved on to another one
                raise ClusteringSDFError(f"--port {port}: already in use on {host} (choose another --port)")
            self.server.gui.configure_theme(show_share_button=False, control_width="large")
            self._set_up_view()
            self._build_gui()
            self._show_meshes()
            self._show_cameras()
        except BaseException:
            with contextlib.redirect_stdout(io.StringIO()):
                self.server.stop()
            raise

    # ------------------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and release the run's temporary files."""
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints "Server stopped"
            self.server.stop()
        self.access.close()

    @staticmethod
    def _refuse_share_url(*_args, **_kwargs) -> None:
        return None

    # ----------------------------------------------------------------------------------- scene

    def _set_up_view(self) -> None:
        """Up direction from the cameras; first view from above one corner, looking at the centre."""
        up = self.access.up
        low, high = self.access.bounds
        centre = (low + high) / 2
        diagonal = float(np.linalg.norm(high - low))
        helper = np.eye(3)[int(np.argmin(np.abs(up)))]
        side = helper - helper.dot(up) * up
        side /= np.linalg.norm(side)
        self.server.scene.set_up_direction(tuple(up))
        self.server.initial_camera.look_at = tuple(centre)
        self.server.initial_camera.up = tuple(up)
        self.server.initial_camera.position = tuple(centre + 0.75 * diagonal * (0.55 * side + 0.8 * up))
        self._frustum_scale = 0.02 * diagonal

    def _glb(self, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> bytes:
        """Binary glTF of a mesh with vertex colours and normals. glTF vertex colours are linear:
        the sRGB palette colours are converted so that the browser shows them as in the pictures."""
        import trimesh

        linear = np.round(_srgb_to_linear(colors) * 255).astype(np.uint8)
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=linear, process=False)
        _ = mesh.vertex_normals  # exported with the mesh for smooth shading
        return trimesh.exchange.gltf.export_glb(mesh, include_normals=True)

    def _show_meshes(self) -> None:
        """(Re-)add the background and object meshes in the current colouring, keeping visibility."""
        meshes = self.access.meshes(self.colouring)
        scene = self.server.scene
        with self._lock:
            if meshes.background is not None:
                mesh = meshes.background
                self.background_node = scene.add_glb("/background", self._glb(mesh.vertices, mesh.faces, mesh.colors),
                                                     visible=self._background_box.value)
                self.background_node.on_click(lambda _event: self.select_object(None))
            for object_id, mesh in meshes.objects.items():
                info = self._objects[object_id]
                node = scene.add_glb(f"/objects/{object_id:02d}_{info.class_name}", self._glb(mesh.vertices, mesh.faces, mesh.colors),
                                     visible=self._object_boxes[object_id].value)
                node.on_click(lambda _event, i=object_id: self.select_object(i))
                self.object_nodes[object_id] = node

    def _show_cameras(self) -> None:
        so3 = self._viser.transforms.SO3
        for camera in self._cameras.values():
            node = self.server.scene.add_camera_frustum(
                f"/cameras/{camera.split}/{camera.frame}",
                fov=camera.vertical_fov,
                aspect=camera.aspect,
                scale=self._frustum_scale,
                thickness=0.1 * self._frustum_scale,
                color=TEST_COLOUR if camera.split == "test" else TRAIN_COLOUR,
                image=camera.thumbnail,
                format="jpeg",
                jpeg_quality=80,
                wxyz=so3.from_matrix(camera.pose_world[:3, :3]).wxyz,
                position=camera.pose_world[:3, 3],
            )
            node.on_click(lambda event, frame=camera.frame: self.select_camera(frame, event.client))
            self.camera_nodes[camera.frame] = node

    # ------------------------------------------------------------------------------------- GUI

    def _build_gui(self) -> None:
        gui = self.server.gui
        gui.add_markdown(f"**{self.access.name}**  \n{self.access.summary}")
        self._colouring_box = gui.add_dropdown("Colour by", [COLOURING_LABELS[c] for c in COLOURINGS], initial_value=COLOURING_LABELS["instance"])
        self._colouring_note = gui.add_markdown("")
        self._colouring_box.on_update(lambda _event: self._colouring_from_list())

        with gui.add_folder("Selection"):
            options = [NO_SELECTION] + [_object_label(o) for o in self._objects.values()]
            self._selection_box = gui.add_dropdown("Object", options, initial_value=NO_SELECTION)
            self._selection_box.on_update(lambda _event: self._select_from_list())
            self._selection_text = gui.add_markdown("Click an object or a camera in the scene.")
            self._selection_image = gui.add_image(np.full((8, 8, 3), 255, np.uint8), visible=False)
            self._go_to_camera = gui.add_button("View from this camera", visible=False)
            self._go_to_camera.on_click(lambda event: self.move_to_camera(self.selected_camera, event.client))
            if self.access.can_score_meshes:
                self._score_button = gui.add_button("Score meshes against gt_mesh.ply", hint="writes RUN/meshes/geometry.json")
                self._score_button.on_click(lambda _event: self.score_meshes())

        with gui.add_folder("Render from here"):
            self._render_button = gui.add_button("Render from here", hint="renders the current view with the model at low resolution")
            self._render_button.on_click(lambda event: self.render_from_client(event.client))
            self._render_text = gui.add_markdown(f"colour | depth | labels, {self.render_height} pixels high")
            self._render_image = gui.add_image(np.full((8, 8, 3), 255, np.uint8), visible=False)

        with gui.add_folder("Cameras"):
            counts = {split: sum(c.split == split for c in self._cameras.values()) for split in ("train", "test")}
            self._camera_boxes = {}
            for split in ("train", "test"):
                box = gui.add_checkbox(f"{split} cameras ({counts[split]})", initial_value=True)
                box.on_update(lambda _event, s=split: self._set_cameras_visible(s))
                self._camera_boxes[split] = box

        with gui.add_folder("Objects"):
            show = gui.add_button_group("Show", ("all", "none"))
            show.on_click(lambda event: self.show_all_objects(event.target.value == "all"))
            self._object_boxes = {}
            for info in self._objects.values():
                box = gui.add_checkbox(_object_label(info), initial_value=True, hint=f"object {info.id}: {info.class_name} ({'thing' if info.thing else 'stuff'})")
                box.on_update(lambda _event, i=info.id: self._set_object_visible(i))
                self._object_boxes[info.id] = box
            self._background_box = gui.add_checkbox("background", initial_value=True, hint="the scene mesh outside the listed objects")
            self._background_box.on_update(lambda _event: self._set_background_visible())
            if not self._objects:
                gui.add_markdown("*this run has no object meshes yet*")

    def _colouring_from_list(self) -> None:
        if not self._syncing:
            self.set_colouring(next(key for key, label in COLOURING_LABELS.items() if label == self._colouring_box.value))

    def set_colouring(self, colouring: str) -> None:
        """Recolour every mesh: ``instance``, ``class`` or ``field``."""
        if colouring not in COLOURINGS:
            raise ValueError(f"colouring must be one of {COLOURINGS}")
        self._colouring_note.content = f"*colouring the meshes by {COLOURING_LABELS[colouring]} ...*"
        start = time.perf_counter()
        with self._lock:
            self.colouring = colouring
            self._show_meshes()
        self._colouring_note.content = f"*{COLOURING_LABELS[colouring]} colours ({time.perf_counter() - start:.1f} s)*"
        with self._syncing_gui():
            self._colouring_box.value = COLOURING_LABELS[colouring]

    def show_all_objects(self, visible: bool) -> None:
        for box in self._object_boxes.values():
            box.value = visible  # its callback shows or hides the object

    def _set_object_visible(self, object_id: int) -> None:
        if object_id in self.object_nodes:
            self.object_nodes[object_id].visible = bool(self._object_boxes[object_id].value)

    def _set_background_visible(self) -> None:
        if self.background_node is not None:
            self.background_node.visible = bool(self._background_box.value)

    def _set_cameras_visible(self, split: str) -> None:
        for frame, node in self.camera_nodes.items():
            if self._cameras[frame].split == split:
                node.visible = bool(self._camera_boxes[split].value)

    @contextlib.contextmanager
    def _syncing_gui(self):
        """Set GUI values without their callbacks acting on them again."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    # ------------------------------------------------------------------------------- selection

    def _select_from_list(self) -> None:
        if self._syncing:
            return
        label = self._selection_box.value
        chosen = [o.id for o in self._objects.values() if _object_label(o) == label]
        self.select_object(chosen[0] if chosen else None)

    def select_object(self, object_id: int | None) -> None:
        """Highlight an object (box and label in the scene) and describe it; None clears."""
        scene = self.server.scene
        with self._lock:
            if self._highlight is not None:
                self._highlight.remove()  # with its box and label
                self._highlight = None
            self.selected_object = object_id if object_id in self._objects else None
            self.selected_camera = None
            self._go_to_camera.visible = False
            self._selection_image.visible = False
            if self.selected_object is None:
                self._selection_text.content = "Click an object or a camera in the scene."
                with self._syncing_gui():
                    self._selection_box.value = NO_SELECTION
                return
            info = self._objects[object_id]
            up = self.access.up
            top = (info.bbox_min + info.bbox_max) / 2 + up * 0.5 * float(np.abs(info.size) @ np.abs(up))
            self._highlight = scene.add_frame("/selection", show_axes=False)
            scene.add_line_segments("/selection/box", _bbox_edges(info.bbox_min, info.bbox_max), HIGHLIGHT_COLOUR,
                                    thickness=3.0, thickness_units="screen")
            scene.add_label("/selection/label", f"{info.id:02d} {info.class_name}", position=top, anchor="bottom-center")
            self._selection_text.content = self.describe_object(info)
            with self._syncing_gui():
                self._selection_box.value = _object_label(info)

    @staticmethod
    def describe_object(info: ObjectInfo) -> str:
        """Markdown: id, class, bounding box, size, F-score."""
        low = ", ".join(f"{v:.2f}" for v in info.bbox_min)
        high = ", ".join(f"{v:.2f}" for v in info.bbox_max)
        size = " x ".join(f"{v:.2f}" for v in info.size)
        fscore = f"{info.fscore:.3f} (5 cm)" if info.fscore is not None else "not scored"
        return (
            f"**object {info.id}**: {info.class_name} (class {info.class_id}, {'thing' if info.thing else 'stuff'})  \n"
            f"box min ({low}) m  \nbox max ({high}) m  \nsize {size} m  \nF-score {fscore}"
        )

    def select_camera(self, frame: str, client: Any = None) -> None:
        """Describe a camera; a test camera shows its report strip (input | machine labels | ours |
        ground truth), a training camera its input image."""
        camera = self._cameras[frame]
        with self._lock:
            self.select_object(None)
            self.selected_camera = frame
            self._go_to_camera.visible = True
            position = ", ".join(f"{v:.2f}" for v in camera.pose_world[:3, 3])
            text = f"**{camera.split} camera {frame}** at ({position}) m"
            if camera.split == "test":
                self._selection_text.content = text + "  \n*building the test view ...*"
                picture = self.access.report_strip(frame)
                caption = "  \ninput | machine labels | ours | ground truth (top: instances, bottom: classes)"
            else:
                picture, caption = camera.thumbnail, "  \ninput image"
            if self.selected_camera != frame:  # another selection came in meanwhile
                return
            self._selection_text.content = text + (caption if picture is not None else "")
            if picture is not None:
                self._selection_image.image = picture
                self._selection_image.visible = True

    def move_to_camera(self, frame: str | None, client: Any) -> None:
        """Put the browser's camera at an input camera's pose (and field of view)."""
        if frame is None or client is None:
            return
        camera = self._cameras[frame]
        with client.atomic():
            client.camera.wxyz = self._viser.transforms.SO3.from_matrix(camera.pose_world[:3, :3]).wxyz
            client.camera.position = camera.pose_world[:3, 3]
            client.camera.fov = camera.vertical_fov

    def score_meshes(self) -> None:
        self._score_button.disabled = True
        self._selection_text.content = "*scoring the meshes against gt_mesh.ply ...*"
        start = time.perf_counter()
        try:
            fscores = self.access.score_meshes()
        except ClusteringSDFError as exc:  # e.g. an unreadable gt_mesh.ply: one line in the panel
            self._selection_text.content = f"cannot score the meshes: {exc}"
            self._score_button.disabled = False
            return
        self._objects = {o.id: o for o in self.access.objects()}
        self._selection_text.content = f"scored {len(fscores)} matched objects in {time.perf_counter() - start:.0f} s; click one to see its F-score"
        self._score_button.disabled = False
        if self.selected_object is not None:
            self.select_object(self.selected_object)

    # ------------------------------------------------------------------------------- rendering

    def render_from_client(self, client: Any) -> RenderResult | None:
        """Render what a browser's camera sees (its pose, vertical field of view and aspect)."""
        if client is None:
            return None
        camera = client.camera
        pose = np.eye(4)
        pose[:3, :3] = self._viser.transforms.SO3(np.asarray(camera.wxyz)).as_matrix()
        pose[:3, 3] = camera.position
        return self.render_from_pose(pose, float(camera.fov), float(camera.aspect))

    def render_from_pose(self, pose_world: np.ndarray, vertical_fov: float, aspect: float) -> RenderResult:
        """Render colour | depth | labels at ``render_height`` pixels high for a camera-to-world
        pose (4, 4, world metres, OpenCV axes) and show them in the panel."""
        height = self.render_height
        width = int(np.clip(round(height * aspect), 16, 4 * height))
        intrinsics = pinhole_intrinsics(vertical_fov, (height, width))
        self._render_button.disabled = True
        self._render_text.content = f"*rendering {width}x{height} ...*"
        try:
            start = time.perf_counter()
            images = self.access.render(pose_world, intrinsics, (height, width))
            seconds = time.perf_counter() - start
        finally:
            self._render_button.disabled = False
        result = RenderResult(images, seconds)
        self._render_image.image = _side_by_side([images["colour"], images["depth"], images["labels"]])
        self._render_image.visible = True
        self._render_text.content = f"colour | depth | labels, {width}x{height} in {seconds:.1f} s"
        self.last_render = result
        return result


def start_viewer(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, device: str = "auto", *,
                 mesh_resolution: int = 128, log: Callable[[str], None] = print, scene_path: Path | None = None) -> RunViewer:
    """Open a run and serve it: returns the running viewer (``port=0`` picks a free port);
    ``scene_path``: where the run's scene is now, when it moved."""
    require_viser()
    check_port_free(host, port)  # before the slow part
    access = open_run(run_dir, device=device, mesh_resolution=mesh_resolution, log=log, scene_path=scene_path)
    try:
        return RunViewer(access, host=host, port=port)
    except BaseException:
        access.close()
        raise


def serve_until_stopped(viewer: RunViewer, announce: Callable[[], None] = lambda: None) -> None:
    """Call ``announce`` (print the address), then serve until Ctrl-C or SIGTERM. The viewer is
    stopped in every case; a Ctrl-C at any point after the viewer started is a normal end."""
    import signal

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        announce()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        viewer.stop()
