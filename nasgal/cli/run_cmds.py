"""`nasgal run`: a whole DARTS-GAL experiment from a TOML file, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def run_cmd(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (TOML); see examples/.", show_default=False)],
    seeds: Annotated[Optional[int], typer.Option(help="Run the trained stages with this many seeds (mean ± std in the report).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Experiment directory (default: the file's 'out', else runs/<name>).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device for every stage (overrides the file).")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Dataset folder (overrides the file).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> int:
    """Run search → stack → train → GAL prune → retrain → report; re-running resumes."""
    from ..experiment import load_experiment, run_experiment, with_overrides
    from ..progress import default_reporter

    exp = load_experiment(experiment)
    update = {"out": str(out) if out else None, "device": device, "data_dir": data_dir, "seeds": seeds}
    exp = with_overrides(exp, {k: v for k, v in update.items() if v is not None}, source="command line")
    reporter = default_reporter(not quiet)
    result = run_experiment(exp, reporter=reporter)
    report = result.out / "report.md"
    typer.echo(f"report: {report}")
    typer.echo(f"        {result.out / 'report.html'}")
    for s in result.seeds:
        typer.echo(
            f"seed {s.seed}: baseline {s.baseline['test_accuracy']:.2%} with {s.baseline['params']:,} params; "
            f"pruned+retrained {s.retrain['test_accuracy']:.2%} with {s.retrain['params']:,} params; "
            f"kept {s.pruned.kept_nodes()}"
        )
    return 0


def register(app: typer.Typer) -> None:
    app.command("run", no_args_is_help=True)(run_cmd)
