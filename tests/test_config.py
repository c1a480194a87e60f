"""Configs are frozen and validated: a bad value in a config file or on the command line is one line
naming the key and what is allowed."""

import dataclasses
import json

import pytest

from clusteringsdf.cli import main
from clusteringsdf.config import PRESETS, Config, ConfigError, preset


def test_presets_are_valid_and_frozen():
    for name in PRESETS:
        config = preset(name)
        assert Config.from_dict(config.to_dict()) == config  # round trip through config.json
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.train.iterations = 1  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.mode = "instance"  # type: ignore[misc]


def test_with_values_returns_a_new_validated_config():
    config = preset("tiny")
    changed = config.with_values({"train.iterations": 7, "sampler.kind": "spheres", "mode": "instance"})
    assert (changed.train.iterations, changed.sampler.kind, changed.mode) == (7, "spheres", "instance")
    assert config.train.iterations == 60 and config.sampler.kind == "grid"  # the original is untouched
    assert changed.with_values({"train.lr": 1}).train.lr == 1.0  # ints are numbers


@pytest.mark.parametrize(
    "values, message",
    [
        ({"sampler.kind": "fancy"}, "sampler.kind: 'fancy' is not one of grid, error_bounded, depth, spheres"),
        ({"loss.opacity_loss": "mse"}, "loss.opacity_loss: 'mse' is not one of bce, nll"),
        ({"field.object_opacity": "x"}, "field.object_opacity: 'x' is not one of share, occlusion"),
        ({"loss.depth_mode": "log"}, "loss.depth_mode: 'log' is not one of metric, ssi"),
        ({"clustering.reg_axis": "both"}, "clustering.reg_axis: 'both' is not one of channels, rays"),
        ({"data.labels": "mask2former"}, "data.labels: 'mask2former' is not one of gt, m2f"),
        ({"train.iterations": 0}, "train.iterations: must be positive, got 0"),
        ({"train.iterations": 2.5}, "train.iterations: expected an integer, got 2.5"),
        ({"clustering.use_diff": "no"}, "clustering.use_diff: expected true or false, got 'no'"),
        ({"field.channels": 1}, "field.channels: must be at least 2"),
        ({"batch.label_balance": 1.5}, "batch.label_balance: must be in [0, 1], got 1.5"),
        ({"train.speed": 3}, "train.speed: unknown key"),
        ({"optimizer.lr": 3}, "optimizer.lr: unknown key"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(values, message):
    with pytest.raises(ConfigError) as error:
        preset("cpu").with_values(values)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_text_assignments_are_parsed_to_the_field_type():
    config = preset("tiny").with_text_values(["loss.eikonal=0.05", "train.iterations=12", "clustering.fg=0", "sampler.kind=depth"])
    assert (config.loss.eikonal, config.train.iterations, config.clustering.fg, config.sampler.kind) == (0.05, 12, 0.0, "depth")
    with pytest.raises(ConfigError, match="train.iterations: expected an integer"):
        preset("tiny").with_text_values(["train.iterations=many"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        preset("tiny").with_text_values(["train.iterations"])


def test_keys_of_earlier_versions_are_read_by_what_they_are_now():
    old = {
        "train": {"rays": 256, "frames_per_batch": 2, "render_chunk": 1024},
        "clustering": {"label_balance": 0.5, "keyframe_fraction": 0.3, "use_diff": False, "diff": 20.0, "use_fgbg": False, "use_reg": True,
                       "label_rays": 7},
        "loss": {"segmentation_opacity": "occlusion", "opacity_bce": 2.0, "segmentation_loss": "nll"},
    }
    config = Config.from_dict(old)
    assert (config.batch.rays, config.batch.frames_per_batch, config.batch.label_balance, config.batch.keyframe_fraction) == (256, 2, 0.5, 0.3)
    assert config.inference.render_chunk == 1024 and config.field.object_opacity == "occlusion"
    assert (config.loss.opacity, config.loss.opacity_loss) == (2.0, "nll")
    assert (config.clustering.diff, config.clustering.bg, config.clustering.fg) == (0.0, 0.0, 0.0)  # switched off: weight 0
    assert config.clustering.reg == Config().clustering.reg  # switched on: the weight stands
    assert preset("tiny").with_text_values(["clustering.use_crossview=off", "train.rays=96"]).clustering.cross_view == 0.0
    assert preset("tiny").with_text_values(["train.rays=96"]).batch.rays == 96
    with pytest.raises(ConfigError, match="clustering.use_diff: expected true or false"):
        Config.from_dict({"clustering": {"use_diff": "no"}})


def test_one_way_to_switch_a_term_off():
    """Every loss weight is a plain number (0: the term is off); no section has on/off switches."""
    for section in (Config().loss, Config().clustering):
        assert not [f.name for f in dataclasses.fields(section) if isinstance(getattr(section, f.name), bool)]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_rejects_a_bad_value_in_a_config_file(tiny_scene, tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"sampler": {"kind": "fancy"}}))
    code = main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--preset", "tiny", "--config", str(path), "--quiet"])
    assert code == 2
    err = _one_error_line(capsys)
    assert "sampler.kind: 'fancy' is not one of grid, error_bounded, depth, spheres" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    path.write_text(json.dumps({"mode": "magic"}))
    assert main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--config", str(path), "--quiet"]) == 2
    assert "mode: 'magic' is not one of objectsdf, instance, semantic, panoptic, contrastive" in _one_error_line(capsys)


def test_cli_rejects_a_bad_set_value_and_applies_good_ones(tiny_scene, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--preset", "tiny", "--set", "loss.eikonal=-1", "--quiet"])
    assert code == 2 and "loss.eikonal: must be >= 0" in _one_error_line(capsys)
    run = tmp_path / "ok"
    code = main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "2",
                 "--set", "loss.eikonal=0.05", "--lr", "1e-3", "--quiet"])
    assert code == 0
    stored = json.loads((run / "config.json").read_text())["config"]
    assert stored["loss"]["eikonal"] == 0.05 and stored["train"]["lr"] == 0.001 and stored["mode"] == "objectsdf"


def test_an_edited_run_config_is_a_one_line_error(tiny_scene, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_scene), "--out", str(run), "--preset", "tiny", "--labels", "gt", "--iters", "2", "--quiet"]) == 0
    identity = json.loads((run / "config.json").read_text())
    identity["config"]["sampler"]["kind"] = "voxels"
    (run / "config.json").write_text(json.dumps(identity))
    assert main(["render", "--run", str(run)]) == 2
    err = _one_error_line(capsys)
    assert "config.json" in err and "sampler.kind: 'voxels'" in err



@pytest.mark.parametrize("source, line", [
    ("mono", "depth: monocular (prepare --mono-depth), fitted per frame to the SfM points; loss.depth_mode=metric"),
    ("sfm", "depth: interpolated from the SfM points (colour only)"),
])
def test_a_scene_with_depth_from_images_says_so_when_training(tiny_scene, tmp_path, capsys, source, line):
    import shutil

    scene = tmp_path / f"{source}_scene"
    shutil.copytree(tiny_scene, scene)
    (scene / "prepare.json").write_text(json.dumps({"depth_source": source}))
    assert main(["train", "--data", str(scene), "--preset", "tiny", "--labels", "gt", "--iters", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert line in capsys.readouterr().out
