"""The docs cannot drift from the CLI: their runnable blocks run, their commands exist, their links resolve.

The marker. A fenced block whose info string is `console runnable` or `python runnable` runs, in
page order, in one fresh directory per page (holding a link `examples/` to the repo's examples):

    ```console runnable            runs without a fleet
    ```console runnable fleet      needs the local fleet (the session `fleet` fixture starts it)
    ```python runnable             the block is a script run with this Python

In a console block a line starting with `$ ` is a command, run by bash with this checkout's
`cvfleet` first on PATH; it must exit 0. The lines under a command are output it must print, in that
order (other lines may come between); `...` inside a line matches anything (ids, paths, timings),
and a line that is only `...` says lines were left out. `~/.cache/cvfleet` in a command stands for
the asset cache, wherever CVFLEET_CACHE puts it. Keep runnable blocks cheap: seconds each.

Every other fenced block is for reading only. Still, every command written anywhere in the docs (a
`$ cvfleet ...` line in any block, or an inline `cvfleet ...` code span) must name subcommands and
options the CLI has, and on a job's page every inline `--option` must belong to that job's commands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from support.fleet import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 15_000
DEFAULT_CACHE = "~/.cache/cvfleet"  # in a runnable command: the asset cache, wherever CVFLEET_CACHE puts it

# The commands whose options a job's page may name as a bare `--option`.
PAGE_COMMANDS = {
    "annotate.md": ["annotate", "batch"],
    "review.md": ["review", "export", "annotate"],
    "sweeps.md": ["sweep", "evaluate"],
    "nn.md": ["train", "evaluate"],
    "fleet.md": ["up", "down", "status", "worker", "flower", "smoke", "assets"],
}

FENCE = re.compile(r"^```(.*)$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
COMMAND_END = re.compile(r"\s(?:\||&&|;|#)\s|[)`]")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: list[str]
    lines: list[str]

    @property
    def runnable(self) -> bool:
        return len(self.info) >= 2 and self.info[1] == "runnable"

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found, current = [], None
    for n, line in enumerate(page.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if current is None and fence:
            current = Block(page, n, fence.group(1).split(), [])
        elif current is not None and line.startswith("```"):
            found.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    assert current is None, f"{page}: a code block opened at line {current.line} is never closed"
    return found


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    text, inside = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            text.append(line)
    return "\n".join(text)


# -- runnable blocks ------------------------------------------------------------------------------


def steps(block: Block) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of a console block."""
    out = []
    for line in block.lines:
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif line.strip():
            assert out, f"{block.where}: output before any `$ ` command"
            out[-1][1].append(line)
    return out


def line_pattern(expected: str) -> re.Pattern:
    parts = [r"\s+".join(map(re.escape, part.split())) for part in expected.strip().split("...")]
    return re.compile(".*".join(parts))


def assert_prints(block: Block, command: str, expected: list[str], output: str) -> None:
    actual = output.splitlines()
    at = 0
    for want in expected:
        if want.strip() == "...":
            continue
        pattern = line_pattern(want)
        while at < len(actual) and not pattern.search(actual[at]):
            at += 1
        assert at < len(actual), f"{block.where}: `{command}` did not print {want.strip()!r}; it printed:\n{output}"
        at += 1


def asset_cache_dir() -> Path:
    from workers import config

    return config.load().cache


def run_page(page: Path, workdir: Path, request) -> int:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "100"}
    ran = 0
    for i, block in enumerate(b for b in blocks(page) if b.runnable):
        if "fleet" in block.info[2:]:
            request.getfixturevalue("fleet")
        if block.info[0] == "python":
            script = workdir / f"block{i}.py"
            script.write_text("\n".join(block.lines) + "\n")
            done = subprocess.run(
                [sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"{block.where}: the script failed:\n{done.stdout}{done.stderr}"
            ran += 1
            continue
        assert block.info[0] == "console", f"{block.where}: runnable blocks are console or python"
        for command, expected in steps(block):
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command.replace(DEFAULT_CACHE, str(asset_cache_dir()))],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"{block.where}: `{command}` exited {done.returncode}:\n{done.stdout}"
            assert_prints(block, command, expected, done.stdout)
            ran += 1
    return ran


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.runnable for b in blocks(p))], ids=lambda p: p.name)
@pytest.mark.fleet
@pytest.mark.slow
def test_runnable_blocks_run_and_print_what_they_show(page, tmp_path, request):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    assert run_page(page, tmp_path, request) > 0


def test_every_job_page_has_a_runnable_block():
    for name in PAGE_COMMANDS:
        page = ROOT / "docs" / name
        assert any(b.runnable for b in blocks(page)), f"docs/{name} has no runnable block"


# -- commands and options named anywhere -----------------------------------------------------------


def the_cli() -> click.Group:
    from workers.cli import cli

    return cli


def option_names(command: click.Command) -> set[str]:
    names = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}
    return names | {"-h", "--help"}  # every command's, from the group's context settings


def check_command(text: str) -> str | None:
    """None if `cvfleet ...` in `text` names real subcommands and options, else what is wrong."""
    rest = text[re.search(r"(?:^|\s)cvfleet\s", text).end() :]
    end = COMMAND_END.search(rest)
    rest = rest[: end.start()] if end else rest
    try:
        tokens = shlex.split(rest)
    except ValueError:
        tokens = rest.split()
    command, path = the_cli(), ["cvfleet"]
    for token in tokens:
        token = token.strip("[]")
        if isinstance(command, click.Group) and not token.startswith("-"):
            alternatives = token.split("|")  # `cvfleet batch show\|list` in a table
            if all(a in command.commands for a in alternatives):
                command = command.commands[alternatives[0]]
                path.append(alternatives[0])
                continue
            grid = token.isupper() or "." in token or "/" in token  # GRID, a file; not a misspelt command
            if grid and "run" in command.commands:  # `cvfleet sweep GRID` is `cvfleet sweep run GRID`
                command = command.commands["run"]
                path.append("run")
                continue
            return f"`{' '.join(path)}` has no command {token!r}"
        if token.startswith("-") and token.split("=")[0] not in option_names(command):
            return f"`{' '.join(path)}` has no option {token!r}"
    return None


def commands_named(page: Path) -> list[str]:
    found = [span for span in CODE_SPAN.findall(prose(page)) if span.startswith("cvfleet ")]
    for block in blocks(page):
        if block.info[:1] in (["console"], []):
            found += [line for line in block.lines if re.match(r"\$ (\S+=\S+ )*cvfleet ", line)]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_in_the_docs_exists(page):
    wrong = [f"{text}: {why}" for text in commands_named(page) if (why := check_command(text))]
    assert not wrong, f"{page.relative_to(ROOT)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(PAGE_COMMANDS))
def test_every_option_on_a_job_page_is_one_of_its_commands(name):
    cli = the_cli()
    known = set()
    for command_name in PAGE_COMMANDS[name]:
        command = cli.commands[command_name]
        subcommands = command.commands.values() if isinstance(command, click.Group) else []
        for c in (command, *subcommands):
            known |= option_names(c)
    page = ROOT / "docs" / name
    spans = [m.split()[0] for m in CODE_SPAN.findall(prose(page)) if re.match(r"--?[a-z]", m)]
    named = {name.split("=")[0] for span in spans for name in span.split("/")}  # `--cfg/--weights/--names`
    assert not named - known, f"docs/{name} names options no command of it has: {sorted(named - known)}"


# -- links and size --------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_readme_stays_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})"
