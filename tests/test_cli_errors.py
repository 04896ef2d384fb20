"""Usage errors and faults as a user meets them, through the installed `nasgal` entry point.

Every command's usage errors (missing argument, unknown option, bad type) and an unknown
command: one `Error:` line on stderr, exit code 2, no traceback. All of them run through
`main`, and one of each kind as a subprocess of the console script that `pip install` made,
against the dependency versions this environment resolved. Then the faults around them: output that cannot be written, unexpected exceptions,
absurd values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from nasgal import compile_network, load
from nasgal.cli.main import main

REPO = Path(__file__).resolve().parent.parent
NET_ARGS = ["--cells", "5", "--channels", "16", "--classes", "10", "--in-channels", "1", "--input-size", "28"]


def entry_point() -> Path:
    exe = Path(sys.executable).parent / "nasgal"
    if not exe.exists():
        pytest.fail(f"no installed `nasgal` console script beside {sys.executable}; install the package (make setup)")
    return exe


def run_cli(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**(os.environ if env is None else env), "COLUMNS": "100", "NASGAL_NO_DOWNLOAD": "1"}
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([str(entry_point()), *args], text=True, timeout=120, env=env, **kw)


# (command line, words the one error line must contain)
USAGE_ERRORS: list[tuple[list[str], str]] = [
    (["nosuchcmd"], "No such command 'nosuchcmd'"),
    (["--bogus"], "No such option: --bogus"),
    # missing argument (or required option)
    (["validate"], "Missing argument"),
    (["import"], "Missing argument"),
    (["export"], "Missing argument"),
    (["stack", "--cells", "5"], "Missing argument"),
    (["compile", "--cells", "5"], "Missing argument"),
    (["render", "--format", "png"], "Missing argument"),
    (["diff", "a.json"], "Missing argument"),
    (["plot", "-o", "x.png"], "Missing argument"),
    (["train", "--dataset", "mnist", "--out", "o"], "Missing argument"),
    (["run", "--seeds", "1"], "Missing argument"),
    (["search", "--out", "o"], "Missing option '--dataset'"),
    (["prune", "--dataset", "mnist", "--out", "o", "--weights", "w"], "Missing argument"),
    # unknown option, for every command
    *[([cmd, "--bogus-option"], "No such option: --bogus-option") for cmd in (
        "validate", "import", "export", "genotypes", "stack", "compile", "schema", "render", "diff", "plot",
        "gallery", "train", "run", "search", "prune")],
    # a value of the wrong type
    (["stack", "darts_v2", "--cells", "ten"], "'--cells'"),
    (["compile", "darts_v2", "--channels", "many"], "'--channels'"),
    (["train", "net.json", "-d", "mnist", "-o", "o", "--epochs", "ten"], "'--epochs'"),
    (["train", "net.json", "-d", "mnist", "-o", "o", "--seed", "2e20"], "'--seed'"),
    (["run", "exp.toml", "--seeds", "some"], "'--seeds'"),
    (["search", "-d", "mnist", "-o", "o", "--batch-size", "big"], "'--batch-size'"),
    (["prune", "net.json", "-w", "w", "-d", "mnist", "-o", "o", "--lam", "strong"], "'--lam'"),
]


def _usage_error_problem(args: list[str], words: str, code: int, out: str, err: str) -> str | None:
    lines = err.strip().splitlines()
    ok = (code == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0]
          and "Traceback" not in err and out == "")
    return None if ok else f"nasgal {' '.join(args)} -> exit {code}, stdout {out!r}, stderr {err!r}"


def test_every_usage_error_is_one_line_exit_2_and_no_traceback(tmp_path, capsys, monkeypatch):
    """Every case through `main`, the function the console script calls (in this process:
    a process per case costs a second of imports each and measures nothing more)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NASGAL_NO_DOWNLOAD", "1")
    failures = []
    for args, words in USAGE_ERRORS:
        code = main(list(args))
        captured = capsys.readouterr()
        problem = _usage_error_problem(args, words, code, captured.out, captured.err)
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)


# One case of each kind of usage error through the installed console script, against the
# dependency versions this environment resolved: a missing module (typer no longer installs
# click) or a dependency change that breaks the error path fails here.
ENTRY_POINT_CASES = [USAGE_ERRORS[0], USAGE_ERRORS[1], USAGE_ERRORS[2],
                     next(c for c in USAGE_ERRORS if c[0] == ["train", "--bogus-option"]),
                     next(c for c in USAGE_ERRORS if "--epochs" in c[0])]


def test_usage_errors_through_the_console_script(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: run_cli(case[0], cwd=tmp_path), ENTRY_POINT_CASES))
    failures = [_usage_error_problem(args, words, res.returncode, res.stdout, res.stderr)
                for (args, words), res in zip(ENTRY_POINT_CASES, results)]
    assert not any(failures), "\n".join(f for f in failures if f)


def test_a_bare_command_shows_its_help(tmp_path):
    res = run_cli(["train"], cwd=tmp_path)
    assert res.returncode == 2 and "Usage:" in res.stdout and "--dataset" in res.stdout
    assert "Traceback" not in res.stderr + res.stdout


def test_output_that_cannot_be_written_is_an_error(tmp_path):
    args = ["stack", "darts_v2", *NET_ARGS]  # JSON on stdout, and no torch to import
    with open("/dev/full", "w") as full:
        res = run_cli(args, stdout=full, cwd=tmp_path)
    assert res.returncode == 1 and "standard output: No space left on device" in res.stderr
    assert "Traceback" not in res.stderr

    res = subprocess.run([str(entry_point()), *args], stderr=subprocess.PIPE, text=True, timeout=120,
                         preexec_fn=lambda: os.close(1), cwd=tmp_path)
    assert res.returncode == 1 and "standard output: closed" in res.stderr and "Traceback" not in res.stderr


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    proc = subprocess.Popen([str(entry_point()), "stack", "darts_v2", *NET_ARGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_unexpected_exceptions_are_one_line_with_a_debug_hint(monkeypatch, capsys):
    def boom(*_a, **_k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("nasgal.cli.spec_cmds.load_spec_arg", boom)
    assert main(["validate", "darts_v2"]) == 2
    err = capsys.readouterr().err
    assert "Error: unexpected ZeroDivisionError: division by zero" in err and "--debug" in err
    assert "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "validate", "darts_v2"])


@pytest.mark.parametrize("target", ["dir", "proc"])
def test_an_output_file_that_cannot_be_written(tmp_path, capsys, target):
    dest = tmp_path if target == "dir" else Path("/proc/no/such/place.json")
    assert main(["stack", "darts_v2", *NET_ARGS, "-o", str(dest)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {dest}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written beside it


def test_an_unreadable_input_file(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "net.json"
    assert main(["stack", "darts_v2", *NET_ARGS, "-o", str(spec)]) == 0
    real = Path.read_text

    def denied(self, *a, **k):
        if self == spec:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", denied)  # as root, a chmod 000 file is still readable
    capsys.readouterr()
    assert main(["validate", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "cannot be read (Permission denied)" in err and "Traceback" not in err


@pytest.mark.parametrize("cmd", ["train", "search", "prune", "run"])
def test_out_naming_a_file_is_refused(tmp_path, capsys, cmd):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    net = tmp_path / "net.json"
    assert main(["stack", "darts_v2", *NET_ARGS, "-o", str(net)]) == 0
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "x"\ndataset = "fashion_mnist"\n')
    weights = tmp_path / "weights.pt"
    torch.save(compile_network(load(net)).state_dict(), weights)
    args = {
        "train": ["train", str(net), "-d", "fashion_mnist", "-o", str(afile)],
        "search": ["search", "-d", "fashion_mnist", "-o", str(afile)],
        "prune": ["prune", str(net), "-w", str(weights), "-d", "fashion_mnist", "-o", str(afile)],
        "run": ["run", str(exp), "-o", str(afile)],
    }[cmd]
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err
    assert afile.read_text() == "keep me\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "inf"], "lr (--lr): Input should be a finite number"),
        (["--lr", "nan"], "lr (--lr): Input should be a finite number"),
        (["--seed", "99999999999999999999"], "seed (--seed)"),
        (["--seed", "-1"], "seed (--seed)"),
    ],
)
def test_absurd_training_values_are_refused(tmp_path, capsys, args, words):
    net = tmp_path / "net.json"
    assert main(["stack", "darts_v2", *NET_ARGS, "-o", str(net)]) == 0
    assert main(["train", str(net), "-d", "fashion_mnist", "-o", str(tmp_path / "run"), *args]) == 1
    err = capsys.readouterr().err
    assert "invalid training settings" in err and words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seeds", ["0", "-2", "100000"])
def test_run_seeds_out_of_range(tmp_path, capsys, seeds):
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "x"\ndataset = "fashion_mnist"\n')
    assert main(["run", str(exp), "--seeds", seeds, "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "seeds" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_search_values_are_checked_before_any_data_is_read(tmp_path, capsys):
    assert main(["search", "-d", "no_such_dataset", "-o", str(tmp_path / "s"), "--partial-channels", "0"]) == 1
    err = capsys.readouterr().err
    assert "invalid search settings" in err and "partial_channels (--partial-channels)" in err


def test_shell_completion_completes_commands():
    """Completion is on (`nasgal --install-completion`): the shell asks with an environment variable."""
    env = {**os.environ, "_NASGAL_COMPLETE": "complete_bash", "COMP_WORDS": "nasgal tr", "COMP_CWORD": "1"}
    res = subprocess.run([str(entry_point())], text=True, capture_output=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.split() == ["train"], res.stderr
    # `--show-completion` alone detects the shell from the parent processes, which a test run
    # started outside a shell does not have; typer's switch makes it take the shell's name.
    shown = run_cli(["--show-completion", "bash"], env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0 and "_nasgal_completion" in shown.stdout
