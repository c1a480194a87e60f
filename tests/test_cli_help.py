"""``--help`` a user can work from: every option explained with its default, the commands listed in
the order of the work, and an error about a command's options shown below that command's usage."""

from __future__ import annotations

import argparse

import pytest

from clusteringsdf.cli import build_parser, main

WORKFLOW = ["demo", "synth", "prepare", "info", "train", "render", "eval", "mesh", "export", "report", "view", "batch"]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_command_has_help():
    missing = [f"{name} {action.option_strings or action.dest}" for name, command in _commands().items() for action in command._actions
               if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert not missing, missing


def test_every_option_with_a_default_shows_it():
    for name, command in _commands().items():
        formatter = command._get_formatter()
        for action in command._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                text = formatter._expand_help(action)
                assert "default" in text.lower(), f"{name} {action.option_strings}: {text}"
                if f"%(default)" in formatter._get_help_string(action):
                    assert str(action.default) in text


def test_top_level_help_lists_the_commands_in_workflow_order(capsys):
    assert list(_commands()) == WORKFLOW
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    listing = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split()[0] for line in listing.splitlines()]
    assert listed == WORKFLOW
    description = out.split("\n\n")[1]
    assert "`" not in out and 2 <= len(description.splitlines()) <= 3
    assert all(len(line) <= 80 for line in out.splitlines())


def test_mesh_help_does_not_promise_metres(capsys):
    with pytest.raises(SystemExit):
        main(["mesh", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "scene units" in out and "metres when the capture has depth" in out


def _usage_error(args: list[str], capsys) -> list[str]:
    """stderr of a command that must fail with its usage line and a one-line error (exit code 2)."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"usage: clusteringsdf {args[0]} ")
    assert err[-1].startswith(f"clusteringsdf {args[0]}: error: ")
    assert all(line.startswith(" ") for line in err[1:-1])  # the rest of the usage, nothing else
    return err


@pytest.mark.parametrize("args, message", [
    (["render", "--run", "RUN", "--video"], "--frames and --video need --trajectory"),
    (["render", "--run", "RUN", "--min-segment-fraction", "1.5"], "--min-segment-fraction must be in [0, 1)"),
    (["eval", "--scene", "SCENE"], "give --pred (label maps) and/or --mesh"),
    (["mesh", "--run", "RUN", "--resolution", "4"], "--resolution: expected at least 8"),
    (["mesh", "--run", "RUN", "--objects", "1,x"], "--objects: expected 'all'"),
    (["export", "--format", "obj"], "give either --run RUN"),
    (["view", "--run", "RUN", "--port", "70000"], "--port: expected 0-65535"),
    (["prepare", "--images", "PHOTOS", "--out", "SCENE", "--segmenter", "import"], "--segmenter import needs --masks DIR"),
    (["train", "--data", "SCENE", "--out", "RUN", "--channels", "many"], "--channels: expected a number or 'auto'"),
    (["batch", "SCENE", "--out", "RUNS", "--segmenter", "sam"], "--segmenter is a prepare option: add --prepare"),
])
def test_option_errors_show_the_commands_usage(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of these names exists
    err = _usage_error(args, capsys)
    assert message in err[-1], err[-1]
    assert f"error: {args[0]}: " not in err[-1]  # the command is named once
    assert not any(tmp_path.iterdir())


def test_parse_errors_show_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["mesh", "--resolution", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: clusteringsdf mesh ") and err[-1].startswith("clusteringsdf mesh: error: ")
