"""Frames from images and videos, and bad input: one line, exit code 2, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from clusteringsdf.cli import main
from clusteringsdf.data.synthetic.capture import write_capture
from clusteringsdf.prepare.frames import sharpness, stage_images, stage_video


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("capture") / "tiny", num_frames=5, width=64, height=48, textured=True)


def _frames(capture) -> list[np.ndarray]:
    return [np.asarray(Image.open(capture.root / "color" / f"{n}.png").convert("RGB")) for n in capture.names]


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), (frames[0].shape[1], frames[0].shape[0]), fps=fps, quality=9, macro_block_size=16)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def test_video_sampling_keeps_sharpest_and_drops_blurred_windows(capture, tmp_path):
    sharp = _frames(capture)
    blurred = [np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(3))) for f in sharp]
    # windows of 3 frames: [b b s] [s b b] [b b b] [b s b] ; the third window has no sharp frame
    sequence = [blurred[0], blurred[0], sharp[0], sharp[1], blurred[1], blurred[1], blurred[2], blurred[2], blurred[2], blurred[3], sharp[3], blurred[3]]
    video = tmp_path / "walk.mp4"
    _write_video(video, sequence)
    staged = stage_video(video, tmp_path / "frames", every=3, log=lambda m: None)
    assert staged.names == ["000002", "000003", "000010"]
    assert list(staged.dropped) == ["000006"] or list(staged.dropped) in (["000007"], ["000008"])
    assert staged.hw == (48, 64)
    assert all((tmp_path / "frames" / f"{n}.png").is_file() for n in staged.names)
    assert sharpness(sharp[0]) > 2 * sharpness(blurred[0])


def test_video_fps_sampling(capture, tmp_path):
    video = tmp_path / "walk.mp4"
    _write_video(video, _frames(capture) * 4, fps=10.0)  # 20 frames, 2 s
    staged = stage_video(video, tmp_path / "frames", fps=2.5, blur_ratio=0.0, log=lambda m: None)
    assert len(staged.names) == 5  # one per 4 frames


def test_images_any_format_and_stems(capture, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, suffix in zip(capture.names, (".jpg", ".png", ".bmp", ".tiff", ".webp")):
        Image.open(capture.root / "color" / f"{name}.png").save(folder / f"IMG_{name}{suffix}")
    (folder / "notes.txt").write_text("not an image")
    staged = stage_images(folder, tmp_path / "frames", log=lambda m: None)
    assert staged.names == [f"IMG_{n}" for n in capture.names]
    assert staged.hw == (48, 64)


def _prepare(args: list[str], capsys) -> tuple[int, str]:
    code = main(["prepare", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


def _assert_one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and message in err, err


def _assert_usage_error(code: int, err: str, message: str) -> None:
    """Options that do not go together: prepare's usage, then one error line."""
    lines = err.splitlines()
    assert code == 2, err
    assert lines[0].startswith("usage: clusteringsdf prepare ") and lines[-1].startswith("clusteringsdf prepare: error: ") and message in lines[-1], err


def test_bad_inputs_are_one_line_errors(capture, tmp_path, capsys):
    poses = ["--poses", "scannet", "--poses-path", str(capture.root)]
    images = tmp_path / "images"
    shutil.copytree(capture.root / "color", images)

    truncated = tmp_path / "truncated"
    shutil.copytree(images, truncated)
    data = (truncated / f"{capture.names[1]}.png").read_bytes()
    (truncated / f"{capture.names[1]}.png").write_bytes(data[: len(data) // 2])
    code, err = _prepare(["--images", str(truncated), "--out", str(tmp_path / "a"), *poses], capsys)
    _assert_one_line(code, err, "unreadable or truncated image")

    mixed = tmp_path / "mixed"
    shutil.copytree(images, mixed)
    Image.open(mixed / f"{capture.names[2]}.png").resize((32, 24)).save(mixed / f"{capture.names[2]}.png")
    code, err = _prepare(["--images", str(mixed), "--out", str(tmp_path / "b"), *poses], capsys)
    _assert_one_line(code, err, "mixed resolutions")

    duplicate = tmp_path / "duplicate"
    shutil.copytree(images, duplicate)
    Image.open(duplicate / f"{capture.names[0]}.png").save(duplicate / f"{capture.names[0]}.jpg")
    code, err = _prepare(["--images", str(duplicate), "--out", str(tmp_path / "c"), *poses], capsys)
    _assert_one_line(code, err, "share the frame name")

    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00\x01 this is not a video " * 50)
    code, err = _prepare(["--video", str(garbage), "--out", str(tmp_path / "d")], capsys)
    _assert_one_line(code, err, "cannot decode video")

    code, err = _prepare(["--images", str(images), "--out", str(tmp_path / "e"), "--segmenter", "import"], capsys)
    _assert_usage_error(code, err, "--segmenter import needs --masks DIR and --masks-format")

    code, err = _prepare(["--images", str(images), "--out", str(tmp_path / "f"), "--poses", "rgbd", "--depth", str(capture.root / "depth")], capsys)
    _assert_one_line(code, err, "--intrinsics")

    for name in "abcdef":
        assert not (tmp_path / name).exists()
    assert not list(tmp_path.glob(".*.prepare-*"))  # the temporary folders are gone


def test_existing_output_is_never_overwritten(capture, tmp_path, capsys):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, err = _prepare(["--images", str(capture.root / "color"), "--out", str(out), "--poses", "scannet", "--poses-path", str(capture.root)], capsys)
    _assert_one_line(code, err, "refusing to overwrite")
    assert (out / "mine.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_prepared_scene_is_complete(capture, tmp_path, capsys):
    out = tmp_path / "scene"
    code, err = _prepare(["--images", str(capture.root / "color"), "--depth", str(capture.root / "depth"), "--out", str(out),
                          "--poses", "scannet", "--poses-path", str(capture.root), "--test-every", "2"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["color", "depth", "pose", "intrinsic", "splits.json", "segmentation_data.pkl", "m2f_semantics", "m2f_instance",
         "m2f_probabilities", "prepare.json"])
    assert main(["info", str(out)]) == 0
    assert "test 3" in capsys.readouterr().out
