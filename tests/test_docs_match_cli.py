"""The documentation matches the command line and the config: every ``clusteringsdf <command> ...``
in README.md, CONTRIBUTING.md and docs/*.md names an existing command and only options that command
has, a complete command line parses, every default the docs state is the parser's (or the preset's)
default, and every config key they name exists.

Where the docs state a default:

* a synopsis line: ``[--option VALUE]`` with a literal VALUE (a number or a plain word; ``N``,
  ``RUN`` and ``a|b`` are placeholders);
* prose: an inline ```--option``` followed in the same paragraph by ``(default X`` or ``, default X``;
* a table with a ``default`` column whose rows name an ``--option``;
* config tables: rows naming ```section.key``` with a column per preset (``cpu``, ``tiny``, ``gpu``,
  ``paper``).

The command of an option is the one named in the same code span (``mesh --resolution``), else the
one named in the nearest heading above it (```clusteringsdf mesh```), else every command that has
the option with a default must agree with the claim. Options whose parser default is None (the
value is decided later, e.g. by the preset) are not compared.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import re
import shlex
from pathlib import Path

import pytest

from clusteringsdf import config as config_module
from clusteringsdf.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

SECTIONS = {f.name: f.type for f in dataclasses.fields(config_module.Config) if f.name not in ("preset", "mode")}
PRESET_COLUMNS = ("cpu", "tiny", "gpu", "paper")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the command line has no sub-commands")


COMMANDS = subparsers()
TOP_LEVEL_OPTIONS = {"--help", "-h", "--version"}


def option_actions(command: str) -> dict[str, argparse.Action]:
    return {name: action for action in COMMANDS[command]._actions for name in action.option_strings}


def config_values(preset_name: str | None = None) -> dict[str, object]:
    """``{"section.key": value}`` of a preset (or of the dataclass defaults)."""
    config = config_module.preset(preset_name) if preset_name else config_module.Config()
    return {f"{section}.{f.name}": getattr(getattr(config, section), f.name)
            for section in SECTIONS for f in dataclasses.fields(getattr(config, section))}


CONFIG_KEYS = set(config_values())

# ------------------------------------------------------------------------------------- markdown


@dataclasses.dataclass
class Snippet:
    """A piece of a document: a code-block line or an inline code span, with the command named by
    the nearest heading above it."""

    text: str
    line: int
    kind: str  # "block" or "inline"
    heading_command: str | None


def heading_command(text: str) -> str | None:
    for name in re.findall(r"`(?:clusteringsdf )?([a-z]+)(?: [^`]*)?`", text):
        if name in COMMANDS:
            return name
    return None


def split_blocks(text: str) -> list[tuple[str, int, str | None, str]]:
    """``(kind, first line, heading command, content)`` of the document's pieces: ``code`` blocks
    (with their language) and ``prose`` paragraphs (lines joined with spaces), tables kept as ``table``."""
    pieces = []
    lines = text.split("\n")
    command = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            language = line[3:].strip()
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            pieces.append(("code:" + language, start + 1, command, "\n".join(body)))
            i += 1
            continue
        if line.startswith("#"):
            command = heading_command(line)
            pieces.append(("prose", i + 1, command, line))
            i += 1
            continue
        if line.lstrip().startswith("|"):
            start = i
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            pieces.append(("table", start + 1, command, "\n".join(rows)))
            continue
        if not line.strip():
            i += 1
            continue
        start = i
        paragraph = []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(("```", "#")) and not lines[i].lstrip().startswith("|"):
            paragraph.append(lines[i].strip())
            i += 1
        pieces.append(("prose", start + 1, command, " ".join(paragraph)))
    return pieces


def inline_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def table_cells(text: str) -> list[list[str]]:
    rows = []
    for line in text.split("\n"):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
            continue
        rows.append(cells)
    return rows


def clean(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").strip()


# ---------------------------------------------------------------------------------- invocations

INVOCATION = re.compile(r"(?<![\w/.-])clusteringsdf\s+((?:--)?[a-z][\w-]*)(.*)")
INLINE_COMMAND = re.compile(r"^(?:clusteringsdf\s+)?([a-z][\w-]*)\s+(--[\w-].*)$")
PASS_THROUGH = re.compile(r"(--(?:train-arg|prepare-arg))=\S+")
SYNOPSIS_MARKS = ("[", "]", "|", "...", "(", ")", "<", ">", "{", "$")


def block_invocations(code: str) -> list[str]:
    """``clusteringsdf ...`` command lines of a code block: continuation lines joined, comments
    dropped, one entry per invocation (``a && clusteringsdf b`` counts)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    found = []
    for line in joined.split("\n"):
        line = re.sub(r"(^|\s)#.*$", "", line)
        for part in re.split(r"&&|;", line):
            match = INVOCATION.search(part)
            if match:
                found.append(f"{match.group(1)} {match.group(2).strip()}".strip())
    return found


def inline_invocations(span: str) -> list[str]:
    span = " ".join(span.split())
    match = INVOCATION.search(span)
    if match:
        return [f"{match.group(1)} {match.group(2).strip()}".strip()]
    match = INLINE_COMMAND.match(span)
    if match and match.group(1) in COMMANDS:
        return [f"{match.group(1)} {match.group(2)}"]
    return []


def options_in(invocation: str) -> list[str]:
    text = PASS_THROUGH.sub(r"\1", invocation)
    text = re.sub(r"--set[= ]\S+", "--set", text)
    return re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", text)


def is_placeholder(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[a-z]+)?|[A-Z]\w*\.\w+|[A-Z]", token)) or token in ("...",)


def synopsis_default_claims(invocation: str) -> list[tuple[str, str]]:
    """``[--option VALUE]`` pairs with a literal VALUE."""
    claims = []
    for option, value in re.findall(r"\[(--[\w-]+)[ =]([^\s\]|]+)\]", invocation):
        if not is_placeholder(value) and not value.startswith("-"):
            claims.append((option, value))
    return claims


def parse_errors(command: str, tokens: list[str], *, allow_missing: bool) -> str | None:
    """argparse's complaint about ``clusteringsdf COMMAND TOKENS`` (placeholder values replaced by
    values of the right type), or None."""
    actions = option_actions(command)
    tokens = list(tokens)
    for i, token in enumerate(tokens[:-1]):
        action = actions.get(token.split("=", 1)[0])
        if action is None or action.nargs == 0 or "=" in token:
            continue
        value = tokens[i + 1]
        if is_placeholder(value) or value in ("S", "N"):
            if action.choices:
                tokens[i + 1] = str(next(iter(action.choices)))
            elif action.type in (int, float):
                tokens[i + 1] = "1"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args([command, *tokens])
    except SystemExit as exc:
        if exc.code in (0, None):
            return None
        message = stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else f"exit {exc.code}"
        if allow_missing and ("the following arguments are required" in message or "expected one argument" in message):
            return None  # an inline span may name a command and an option without the rest
        return message
    return None


def same_value(claim: str, default: object) -> bool:
    claim = claim.strip().strip("`'\"").rstrip(".")
    if isinstance(default, bool):
        return claim.lower() in (("true", "on", "yes") if default else ("false", "off", "no", "-", "—"))
    if default is None or default == []:
        return claim.lower() in ("-", "—", "none", "")
    if isinstance(default, (int, float)):
        try:
            return float(claim.replace("_", "").replace(",", "")) == float(default)
        except ValueError:
            return False
    return claim == str(default)


def check_default(option: str, claim: str, command: str | None) -> str | None:
    """None when the claim matches the parser's default of the option, else the problem."""
    commands = [command] if command else [c for c in COMMANDS if option in option_actions(c)]
    if not commands:
        return f"{option}: no command has this option"
    defaults = {c: option_actions(c)[option].default for c in commands if option in option_actions(c)}
    if command and command not in defaults:
        return f"{command} has no option {option}"
    known = {c: d for c, d in defaults.items() if d is not None}
    wrong = [f"{c}: {d!r}" for c, d in known.items() if not same_value(claim, d)]
    if wrong:
        return f"{option}: the docs say default {claim}, the parser has {', '.join(wrong)}"
    return None


# ---------------------------------------------------------------------------------------- check


def problems(text: str) -> list[str]:
    """Every mismatch between a document and the command line / config."""
    found: list[str] = []

    def check_invocation(invocation: str, line: int, *, kind: str) -> None:
        command = invocation.split()[0]
        rest = invocation[len(command):].strip()
        if command.startswith("--"):
            if command not in TOP_LEVEL_OPTIONS:
                found.append(f"line {line}: clusteringsdf has no option {command}")
            return
        if command not in COMMANDS:
            found.append(f"line {line}: `clusteringsdf {command}`: no such command (commands: {', '.join(COMMANDS)})")
            return
        actions = option_actions(command)
        for option in options_in(rest):
            if option not in actions:
                found.append(f"line {line}: `{command}` has no option {option} (in: {invocation})")
        for option, value in synopsis_default_claims(rest):
            if option in actions:
                problem = check_default(option, value, command)
                if problem:
                    found.append(f"line {line}: `{command} [{option} {value}]`: {problem}")
        for key, value in re.findall(r"--set[= ]([a-z_]+\.[a-z_]+)=(\S+)", rest):
            found.extend(f"line {line}: {p}" for p in check_set(key, value))
        if not any(mark in rest for mark in SYNOPSIS_MARKS):
            try:
                tokens = shlex.split(rest)
            except ValueError:
                return
            error = parse_errors(command, tokens, allow_missing=(kind == "inline"))
            if error:
                found.append(f"line {line}: `clusteringsdf {invocation}` does not parse: {error}")

    for kind, line, command, content in split_blocks(text):
        if kind.startswith("code:"):
            if kind in ("code:python", "code:json"):
                continue
            for invocation in block_invocations(content):
                check_invocation(invocation, line, kind="block")
        elif kind == "prose":
            for span in inline_spans(content):
                for invocation in inline_invocations(span):
                    check_invocation(invocation, line, kind="inline")
            found += [f"line {line}: {p}" for p in prose_default_problems(content, command)]
            found += [f"line {line}: {p}" for p in config_key_problems(content)]
        elif kind == "table":
            for span in inline_spans(content):
                for invocation in inline_invocations(span):
                    check_invocation(invocation, line, kind="inline")
            found += [f"table at line {line}: {p}" for p in table_problems(content, command)]
            found += [f"table at line {line}: {p}" for p in config_key_problems(content)]
    return found


DEFAULT_CLAIM = re.compile(
    r"`(?P<code>[^`]*?(?P<option>--[a-z][\w-]*)[^`]*)`(?P<gap>[^`]{0,80}?)(?:\(|, )default:? `?(?P<value>[^\s,;)`]+)`?"
)


def prose_default_problems(paragraph: str, command: str | None) -> list[str]:
    found = []
    for match in DEFAULT_CLAIM.finditer(paragraph):
        if "--" in match.group("gap"):
            continue  # the default belongs to a later option
        named = inline_invocations(match.group("code"))
        span_command = named[0].split()[0] if named else None
        problem = check_default(match.group("option"), match.group("value"), span_command or command)
        if problem:
            found.append(problem)
    return found


def table_problems(table: str, command: str | None) -> list[str]:
    rows = table_cells(table)
    if len(rows) < 2:
        return []
    header = [clean(c).lower() for c in rows[0]]
    found = []
    if "default" in header:
        column = header.index("default")
        for row in rows[1:]:
            options = re.findall(r"(?<![\w-])(--[a-z][\w-]*)", row[0]) if row else []
            if options and column < len(row):
                named = inline_invocations(clean(row[0]))
                row_command = named[0].split()[0] if named else command
                problem = check_default(options[0], clean(row[column]), row_command)
                if problem:
                    found.append(problem)
    presets = [p for p in PRESET_COLUMNS if p in header]
    if presets:
        values = {p: config_values(p) for p in presets}
        for row in rows[1:]:
            key = re.fullmatch(r"`([a-z_]+\.[a-z_]+)`", row[0].strip()) if row else None
            if not key:
                continue
            key = key.group(1)
            if key not in CONFIG_KEYS:
                found.append(f"{key}: no such config key")
                continue
            for p in presets:
                column = header.index(p)
                cell = clean(row[column]) if column < len(row) else ""
                if not same_config_value(cell, values[p][key]):
                    found.append(f"{key}: the docs say {p} = {cell!r}, the {p} preset has {values[p][key]!r}")
    return found


def same_config_value(cell: str, value: object) -> bool:
    if isinstance(value, bool):
        return cell.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(cell.replace("_", "").replace(",", "")) == float(value)
        except ValueError:
            return False
    return cell.strip("'\"") == str(value)


CONFIG_MENTION = re.compile(r"`(?:--set[= ])?(?P<key>(?:%s)\.[a-z_]+)(?:=[^`]*)?`(?!\s*\()" % "|".join(SECTIONS))


def config_key_problems(text: str) -> list[str]:
    """Config keys named in inline code (```clustering.sem_ray```, ```--set loss.eikonal=0.05```)
    that do not exist (or are old names)."""
    found = []
    for match in CONFIG_MENTION.finditer(text):
        key = match.group("key")
        if key.endswith("_py") or re.search(r"\.(py|json|md|html|log)$", key):
            continue
        if key not in CONFIG_KEYS:
            moved = config_module.MOVED_KEYS.get(key)
            found.append(f"{key}: no such config key" + (f" (now {moved})" if moved else ""))
    return found


def check_set(key: str, value: str) -> list[str]:
    if key not in CONFIG_KEYS:
        moved = config_module.MOVED_KEYS.get(key)
        return [f"--set {key}: no such config key" + (f" (now {moved})" if moved else "")]
    if is_placeholder(value) or value in ("V", "VALUE"):
        return []
    try:
        config_module.Config().with_text_values([f"{key}={value}"])
    except config_module.ConfigError as exc:
        return [f"--set {key}={value}: {exc}"]
    return []


# ---------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_document_matches_the_command_line(document):
    assert document.is_file()
    found = problems(document.read_text())
    assert not found, f"{document.name}:\n  " + "\n  ".join(found)


def test_the_reference_lists_every_command_and_option():
    text = (ROOT / "docs" / "reference.md").read_text()
    missing = []
    for command in COMMANDS:
        if f"`clusteringsdf {command}`" not in text:
            missing.append(f"command {command}")
            continue
        for option in option_actions(command):
            if option.startswith("--") and option != "--help" and not re.search(rf"`{re.escape(option)}(?![\w-])", text):
                missing.append(f"{command} {option}")
    assert not missing, "docs/reference.md does not document: " + ", ".join(missing)


def test_the_reference_lists_every_config_key_and_preset_difference():
    text = (ROOT / "docs" / "reference.md").read_text()
    missing = sorted(key for key in CONFIG_KEYS if not re.search(rf"^\| `{re.escape(key)}` \|", text, flags=re.M))
    assert not missing, "docs/reference.md has no table row for: " + ", ".join(missing)
    cpu = config_values("cpu")
    preset_rows = {}
    for table in re.findall(r"((?:^\|.*\n)+)", text, flags=re.M):
        rows = table_cells(table.strip())
        header = [clean(c).lower() for c in rows[0]]
        if all(p in header for p in PRESET_COLUMNS):
            preset_rows.update({clean(row[0]): row for row in rows[1:]})
    differing = sorted(key for p in PRESET_COLUMNS for key, value in config_values(p).items() if value != cpu[key])
    assert not [k for k in differing if k not in preset_rows], (
        "the presets table lacks: " + ", ".join(k for k in differing if k not in preset_rows)
    )


def test_the_checks_catch_a_wrong_default_an_unknown_option_and_a_bad_command_line():
    """The checks themselves: each of these lines is wrong in one way."""
    wrong = [
        "```bash\nclusteringsdf mesh --run RUN [--resolution 512]\n```",
        "```bash\nclusteringsdf report --run runs/a --baseline a b\n```",
        "```bash\nclusteringsdf info SCENE [--downscale 2]\n```",
        "```bash\nclusteringsdf mesh --run RUN --no-such-option\n```",
        "```bash\nclusteringsdf fly --run RUN\n```",
        "The viewer listens on `view --port` (default 8000).",
        "| option | default | meaning |\n|---|---|---|\n| `mesh --resolution` | 512 | grid |",
        "Balanced rays: `clustering.label_balance`.",
        "```bash\nclusteringsdf train --data S --out R --set batch.label_balance=lots\n```",
    ]
    for text in wrong:
        assert problems(text), text
    right = [
        "```bash\nclusteringsdf mesh --run RUN [--resolution 256]\n```",
        "```bash\nclusteringsdf report --run runs/a --baseline runs/b --baseline runs/c\n```",
        "The viewer listens on `view --port` (default 8080).",
        "```bash\nclusteringsdf train --data SCENE --out RUN --seed S --set batch.label_balance=0.5\n```",
    ]
    for text in right:
        assert not problems(text), (text, problems(text))
