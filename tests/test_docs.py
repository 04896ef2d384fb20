"""The documentation's commands and code, checked against the code so that neither can drift.

- Every ``nasgal`` command line in README.md and docs/*.md (``console`` blocks, and lines that
  start with ``nasgal`` in plain blocks) is parsed by the real command line: the command and
  every option must exist and every value must have the right type.
- The walkthroughs (README.md's quick start and pipeline, docs/pruning.md's first block) run
  end to end, shrunk (1 epoch, a few dozen images of tiny FashionMNIST files), in an empty
  folder, in their documented order; a command whose documented output is an error must fail.
- Python blocks that start with ``import nasgal`` run in an empty folder; the others are
  illustrations, and their ``nasgal`` imports must resolve.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from datafiles import fashion_mnist_root, offline

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The documents whose commands run end to end (in document order, one folder per document).
WALKTHROUGHS = ("README.md", "pruning.md")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass
class Command:
    doc: str
    line: int
    text: str  # the command line, continuations joined, comment removed
    fails: bool  # the documented output is an error
    raw: str = ""  # as written (quotes, redirections)

    def argv(self) -> list[str]:
        return shlex.split(self.text)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


@dataclass
class Snippet:
    doc: str
    line: int
    code: str


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (outside quotes)."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return shlex.join(list(lexer))
    except ValueError:
        return line


def blocks(doc: Path) -> list[Command | Snippet]:
    """The commands and Python snippets of ``doc``, in order."""
    text = doc.read_text(encoding="utf-8")
    found: list[Command | Snippet] = []
    for m in FENCE.finditer(text):
        lang, body = m.group(1), m.group(2)
        start = text.count("\n", 0, m.start()) + 2
        if lang == "python":
            found.append(Snippet(doc.name, start, body))
            continue
        if lang not in ("", "console", "bash", "sh"):
            continue
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            raw, at = lines[i], start + i
            i += 1
            cmd = raw[2:] if raw.startswith("$ ") else (raw if lang != "console" else "")
            if not cmd.startswith("nasgal "):
                continue
            while cmd.rstrip().endswith("\\") and i < len(lines):  # continuation lines
                cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
                i += 1
            cmd = cmd.split(" | ")[0]  # `nasgal compile x --json | jq ...`: the nasgal part
            output = []
            while i < len(lines) and lang == "console" and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            found.append(Command(doc.name, at, _strip_comment(cmd), any(o.startswith("Error:") for o in output),
                                 raw=cmd))
    return found


def all_commands() -> list[Command]:
    return [c for d in DOCS for c in blocks(d) if isinstance(c, Command)]


def _parseable(cmd: Command) -> bool:
    """Synopsis lines (``[-o FILE]``, ``SPEC``) describe a command; they are not one."""
    return not re.search(r"\[|\||>|<", cmd.raw.split("#")[0])


def test_the_docs_have_commands_and_walkthroughs():
    cmds = all_commands()
    assert len(cmds) >= 30
    assert {c.doc for c in cmds} >= {"README.md", "pruning.md", "cli.md", "search.md"}


def _group():
    """The `nasgal` command as click sees it (typer builds it from the app)."""
    import typer.main

    from nasgal.cli.main import app

    return typer.main.get_command(app)


@pytest.mark.parametrize("cmd", [c for c in all_commands() if _parseable(c)], ids=str)
def test_every_documented_command_parses(cmd):
    """The command and every option exist, and every value has the type the option takes."""
    name, *rest = cmd.argv()[1:]
    group = _group()
    try:
        with group.make_context("nasgal", [name]) as ctx:
            sub = group.get_command(ctx, name)
            assert sub is not None, f"{cmd}: no command {name!r}"
            sub.make_context(name, rest, parent=ctx)
    except Exception as e:  # click's usage errors (typer vendors click): they have format_message()
        if not hasattr(e, "format_message"):
            raise
        pytest.fail(f"{cmd}: {e.format_message()}")


# Running the walkthroughs -------------------------------------------------------------------------
SHRINK = {
    "search": ["--epochs", "1", "--subset", "64", "--cells", "2", "--channels", "4", "--batch-size", "8"],
    "train": ["--epochs", "1", "--subset", "64", "--batch-size", "16"],
    "prune": ["--epochs", "1", "--subset", "64", "--batch-size", "16", "--critic-steps", "1"],
}
RUN_OPTIONS = ["--device", "cpu", "--quiet"]


def _shrunk(argv: list[str], data: Path) -> list[str]:
    """``argv`` with small sizes appended (a later option wins) and the tiny data folder."""
    sub = argv[1]
    if sub in SHRINK:
        return [*argv[1:], *SHRINK[sub], *RUN_OPTIONS, "--data-dir", str(data)]
    return argv[1:]


@pytest.mark.parametrize("doc", WALKTHROUGHS)
def test_walkthrough_runs_end_to_end_shrunk(doc, tmp_path, monkeypatch, capsys):
    from nasgal.cli.main import main

    offline(monkeypatch)
    data = fashion_mnist_root(tmp_path / "data", n_train=96, n_test=16)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = next(d for d in DOCS if d.name == doc)
    ran = 0
    for item in blocks(path):
        if isinstance(item, Snippet):
            if item.code.startswith("import nasgal"):
                exec(compile(item.code, f"{doc}:{item.line}", "exec"), {})  # noqa: S102 - our own docs
            continue
        if not _parseable(item) or item.argv()[1] == "run":
            continue  # `nasgal run` of a full-size experiment file: its stages are the other lines
        code = main(_shrunk(item.argv(), data))
        err = capsys.readouterr().err
        if item.fails:
            assert code != 0, f"{item} should fail as documented"
        else:  # `nasgal diff` exits 1 when the specs differ, as diff(1) does
            assert code in ((0, 1) if item.argv()[1] == "diff" else (0,)), f"{item} failed: {err}"
        ran += 1
    assert ran >= 5


@pytest.mark.parametrize(
    "snippet",
    [s for d in DOCS for s in blocks(d) if isinstance(s, Snippet) and not s.code.startswith("import nasgal")],
    ids=lambda s: f"{s.doc}:{s.line}",
)
def test_illustrative_snippets_import_what_exists(snippet):
    """A snippet that is not run must still be Python, and every name it imports from nasgal
    must exist (a rename breaks the docs here, not in a user's hands)."""
    import importlib

    try:
        tree = ast.parse(snippet.code)
    except SyntaxError:
        assert "..." in snippet.code, "not Python, and not an elided example either"
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nasgal"):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)]
            assert not missing, f"{snippet.doc}:{snippet.line}: {node.module} has no {missing}"
