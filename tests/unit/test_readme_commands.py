"""Every `fi-spark` command line README.md shows is accepted by the CLI; the cheap ones are run for real.

Command lines come from the fenced bash blocks (chains split at `&&`, `;`, `|`; `\\` continuations joined) and
from inline code spans (outside the stage table, whose cells name commands rather than show a command line).
A line with arguments must parse as written; a bare `fi-spark <command>` must at least answer `--help`. `plan`,
`runs` and `show-config` run for real in an empty folder: they end in 0 or in one `fi-spark: error:` line,
never a traceback (the README's own plan line used to crash with a TypeError).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fi_spark.cli import build_parser, main
from tests.conftest import REPO

CHEAP = {"plan", "runs", "show-config"}  # commands that read a folder or the config and send nothing


def readme_commands(text: str) -> list[list[str]]:
    """The argv (after `fi-spark`) of every command line in `text`, in order, without duplicates."""
    found: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)  # `#` comments dropped, `&&` a token
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in ("&&", "||", ";", "|", "&"):
                    words.append(token)
                    continue
                if words and words[0].endswith("fi-spark"):
                    found.append(words[1:])
                words = []
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # inline spans only outside fenced blocks
    for match in re.finditer(r"`((?:\.venv/bin/)?fi-spark\b[^`]*)`", prose, re.S):
        line_start = prose.rfind("\n", 0, match.start()) + 1
        if prose[line_start] != "|":  # the stage table: command names, not command lines
            found.append(shlex.split(match.group(1))[1:])
    unique: list[list[str]] = []
    for argv in found:
        if argv and argv not in unique:
            unique.append(argv)
    return unique


COMMANDS = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))


def test_the_readme_shows_the_commands_this_test_exists_for():
    """The parser found the plan line that crashed, the quick start's pipeline and the runs commands."""
    assert [
        "plan",
        "--from",
        "fi-spark-out",
        "--documents",
        "1000000",
        "--doc-tokens",
        "800",
        "--gpus",
        "8",
    ] in COMMANDS
    assert ["pipeline"] in COMMANDS and ["runs", "list", "--output", "DIR"] in COMMANDS
    assert ["serve-llm", "--install-only"] in COMMANDS


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_readme_command_parses(argv: list[str], capsys: pytest.CaptureFixture[str]):
    """The command line parses as written (a bare command: its --help answers)."""
    parser = build_parser()
    if len(argv) == 1 or argv[-1] == "--help":
        with pytest.raises(SystemExit) as done:
            parser.parse_args([argv[0], "--help"])
        assert done.value.code == 0
        assert "usage: fi-spark " + argv[0] in capsys.readouterr().out
    else:
        args = parser.parse_args(argv)
        assert args.command == argv[0]


CHEAP_COMMANDS = [a for a in COMMANDS if a[0] in CHEAP and "--help" not in a and (len(a) > 1 or a[0] == "show-config")]


@pytest.mark.parametrize("argv", CHEAP_COMMANDS, ids=[" ".join(a) for a in CHEAP_COMMANDS])
def test_cheap_readme_command_runs(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Run for real in an empty folder: success, or exactly one `fi-spark: error:` line (no run there yet)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("fi-spark: error: ")]
    assert (code, len(errors)) in ((0, 0), (2, 1)), err
    assert "Traceback" not in err
