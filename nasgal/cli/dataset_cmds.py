"""`nasgal datasets`: build datasets from raw files (``prepare voice``), synthesise test speech
(``espeak``), and list or clear the image cache (``cache``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..data.voice_config import VoiceSettings
from .options import setting

datasets_app = typer.Typer(
    help="Build datasets from raw files (speech into spectrogram sets, a small synthetic speech set); "
         "list or clear the image cache.",
    no_args_is_help=True,
)
prepare_app = typer.Typer(help="Turn raw files into a dataset that train, search, prune and run read.",
                          no_args_is_help=True)
datasets_app.add_typer(prepare_app, name="prepare")


def _v(name: str, *flags: str) -> Any:
    return setting(VoiceSettings, name, *flags)


@prepare_app.command("voice", no_args_is_help=True)
def prepare_voice_cmd(
    src: Annotated[Path, typer.Argument(help="Speech folder: VoxCeleb1's wav/ (idXXXXX/<video>/<utt>.wav) or <speaker>/<utt>.wav|flac.",
                                        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the prepared dataset (pass it as --data-dir).")],
    speakers: Annotated[Optional[int], _v("speakers", "--speakers")] = None,
    segment_seconds: Annotated[Optional[float], _v("segment_seconds", "--segment-seconds")] = None,
    size: Annotated[Optional[int], _v("size", "--size")] = None,
    test_pieces: Annotated[Optional[int], _v("test_pieces", "--test-pieces")] = None,
    split_by: Annotated[Optional[str], _v("split_by", "--split-by")] = None,
    seed: Annotated[Optional[int], _v("seed", "--seed")] = None,
    sample_rate: Annotated[Optional[int], _v("sample_rate", "--sample-rate")] = None,
    n_fft: Annotated[Optional[int], _v("n_fft", "--n-fft")] = None,
    hop: Annotated[Optional[int], _v("hop", "--hop")] = None,
    db_range: Annotated[Optional[float], _v("db_range", "--db-range")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest's summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Cut speech into pieces, turn them into spectrogram images, split them and cache them in --out.

    Preparing again with the same settings on the same files does nothing; other settings build a new cache beside the old one, and --out then points to the new one.
    """
    from ..data.voice import prepare_voice
    from ..progress import default_reporter

    settings = VoiceSettings.resolve(
        speakers=speakers, segment_seconds=segment_seconds, size=size, test_pieces=test_pieces, split_by=split_by,
        seed=seed, sample_rate=sample_rate, n_fft=n_fft, hop=hop, db_range=db_range,
    )
    reporter = default_reporter(not quiet)
    try:
        result = prepare_voice(src, out, settings, reporter=reporter)
    finally:
        reporter.close()
    _print_prepared(result, out, as_json)


def _print_prepared(result: Any, out: Path, as_json: bool) -> None:
    from .main import err_console

    m = result.manifest
    for s in result.skipped:  # even with --quiet or --json: files left out are news, not progress
        err_console.print(f"skipped {s.path}: {s.reason}", markup=False, highlight=False)
    if m.get("ignored"):
        err_console.print(f"ignored {len(m['ignored'])} audio file(s) outside any speaker folder: "
                          f"{', '.join(m['ignored'][:5])}{' ...' if len(m['ignored']) > 5 else ''}",
                          markup=False, highlight=False)
    if as_json:
        keys = ("key", "source", "layout", "settings", "shape", "speakers", "pieces", "summary", "skipped")
        sys.stdout.write(json.dumps({"folder": str(result.folder), "reused": result.reused,
                                     "pieces_per_s": round(result.rate, 1), **{k: m[k] for k in keys}}, indent=2) + "\n")
        return
    from .output import stdout_console, table as make_table

    console = stdout_console()
    if not console.is_terminal:
        console.width = max(console.width, 140)  # a log keeps whole speaker names and notes
    t = make_table(console, title=f"{len(m['speakers'])} speakers, {m['layout']} layout, {m['source']}")
    for col in ("speaker", "label", "files", "skipped", "seconds", "pieces", "train", "test", "unused", "note"):
        t.add_column(col, justify="left" if col in ("speaker", "note") else "right")
    for s in m["summary"]:
        t.add_row(s["speaker"], "–" if s["label"] is None else str(s["label"]), str(s["files"]), str(s["skipped"]),
                  f"{s['seconds']:.1f}", str(s["pieces"]), str(s["train"]), str(s["test"]), str(s["unused"]), s["note"])
    console.print(t)
    p = m["pieces"]
    _, _, h, w = m["shape"]
    if result.reused:
        how = "already prepared with these settings: nothing to do"
    else:
        how = f"{result.pieces:,} pieces in {result.seconds:.1f} s ({result.rate:,.0f} pieces/s)"
    console.print(f"{p['train']:,} train and {p['test']:,} test pieces of {h}×{w} in {result.folder}; {how}.",
                  markup=False, highlight=False)
    console.print(f"Use it with: --dataset voice --data-dir {out}", markup=False, highlight=False)


@datasets_app.command("espeak", no_args_is_help=True)
def espeak_cmd(
    out: Annotated[Path, typer.Argument(help="Folder to write <speaker>/<NNN>.wav into.", show_default=False)],
    speakers: Annotated[int, typer.Option(help="Voices (speakers), up to 18.")] = 10,
    utterances: Annotated[int, typer.Option(help="Sentences per speaker.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the sentences, speaking rates and pitches.")] = 0,
) -> None:
    """Synthesise a small real-speech set with espeak-ng: voices as speakers, sentences as utterances."""
    from ..data.espeak import synthesise_speech

    files = synthesise_speech(out, speakers=speakers, utterances=utterances, seed=seed)
    sys.stdout.write(f"{sum(files.values())} files of {len(files)} speakers in {out}; "
                     f"prepare them with: nasgal datasets prepare voice {out} --out DIR\n")


@datasets_app.command("cache")
def cache_cmd(
    folder: Annotated[Optional[Path], typer.Option(
        "--dir", help="The cache folder (default: $NASGAL_DATA_CACHE, else ~/.cache/nasgal/image-cache).",
        show_default=False)] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Delete the files listed (run it when no run is loading data).")] = False,
    older_than: Annotated[Optional[float], typer.Option(
        "--older-than", min=0, metavar="DAYS", help="Only files not used for more than DAYS days.", show_default=False)] = None,
) -> None:
    """List the image cache (decoded image folders too large for memory) and, with --clear, delete it."""
    import time

    from ..data.image_cache import cache_files, cache_folder, format_bytes, remove_cache_files
    from .output import stdout_console, table as make_table

    where = cache_folder(folder)
    files = cache_files(where)
    if older_than is not None:
        files = [f for f in files if time.time() - f.last_used > older_than * 86400]
    console = stdout_console()
    if not console.is_terminal:
        console.width = max(console.width, 140)  # whole file names in a log
    total = format_bytes(sum(f.bytes for f in files))
    scope = "" if older_than is None else f" unused for more than {older_than:g} days"
    if clear:
        n, freed = remove_cache_files(files)
        console.print(f"removed {n} file(s){scope}, {format_bytes(freed)}, from {where}", markup=False, highlight=False)
        return
    if files:
        t = make_table(console)
        for col in ("file", "size", "last used", "note"):
            t.add_column(col, justify="right" if col == "size" else "left")
        for f in files:
            t.add_row(f.path.name, format_bytes(f.bytes), time.strftime("%Y-%m-%d %H:%M", time.localtime(f.last_used)),
                      "unfinished: being written, or left by a killed run" if f.partial else "")
        console.print(t)
    console.print(f"{len(files)} file(s){scope}, {total}, in {where}"
                  + ("; delete them with: nasgal datasets cache --clear" if files else ""), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
