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
        ({"loss.segmentation_loss": "mse"}, "loss.segmentation_loss: 'mse' is not one of bce, nll"),
        ({"loss.segmentation_opacity": "x"}, "loss.segmentation_opacity: 'x' is not one of share, occlusion"),
        ({"loss.depth_mode": "log"}, "loss.depth_mode: 'log' is not one of metric, ssi"),
        ({"clustering.reg_axis": "both"}, "clustering.reg_axis: 'both' is not one of channels, rays"),
        ({"data.labels": "mask2former"}, "data.labels: 'mask2former' is not one of gt, m2f"),
        ({"train.iterations": 0}, "train.iterations: must be positive, got 0"),
        ({"train.iterations": 2.5}, "train.iterations: expected an integer, got 2.5"),
        ({"clustering.use_diff": "no"}, "clustering.use_diff: expected true or false, got 'no'"),
        ({"field.channels": 1}, "field.channels: must be at least 2"),
        ({"clustering.label_balance": 1.5}, "clustering.label_balance: must be in [0, 1], got 1.5"),
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
    config = preset("tiny").with_text_values(["loss.eikonal=0.05", "train.iterations=12", "clustering.use_fgbg=off", "sampler.kind=depth"])
    assert (config.loss.eikonal, config.train.iterations, config.clustering.use_fgbg, config.sampler.kind) == (0.05, 12, False, "depth")
    with pytest.raises(ConfigError, match="train.iterations: expected an integer"):
        preset("tiny").with_text_values(["train.iterations=many"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        preset("tiny").with_text_values(["train.iterations"])


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
