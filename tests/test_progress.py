"""Progress output: readable at 80 columns, no source links, and an early estimate of an epoch's time."""

from __future__ import annotations

import io

from rich.console import Console

from nasgal.progress import PlainReporter, RichReporter


def test_rich_bar_keeps_its_width_at_80_columns_and_logs_without_source_links():
    buf = io.StringIO()
    rep = RichReporter(Console(file=buf, width=80, force_terminal=True, log_path=False))
    for epoch in range(2):
        rep.start("train", epoch, 50, 469)
        rep.advance(100)
        rep.end({"epoch": epoch + 1, "train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.79, "images_per_s": 1234.5,
                 "genotype": "normal: sep_conv_3x3(c_{k-2}->0) " * 4})
    rep.progress.refresh()
    rep.close()
    text = buf.getvalue()
    assert "progress.py" not in text
    assert "━" * 10 in text  # the bar is drawn, not squeezed to a character
    assert "100/469" in text and "…" not in text.split("train_loss")[0]


def test_plain_reporter_estimates_the_epoch_time_once(monkeypatch):
    buf = io.StringIO()
    rep = PlainReporter(buf)
    monkeypatch.setattr(PlainReporter, "ESTIMATE_AFTER_S", 0.0)
    rep.start("search", 0, 50, 400)
    for _ in range(3):
        rep.advance()
    rep.start("search", 1, 50, 400)
    rep.advance()
    lines = buf.getvalue().splitlines()
    # after the second step: the first one (a warm-up) is timed apart from the rest
    assert len(lines) == 1 and lines[0].startswith("search epoch 1/50: 2/400 steps in ")
    assert "per epoch" in lines[0]


def test_tables_are_ascii_when_piped_and_boxed_on_a_terminal():
    from nasgal.cli.output import table

    for terminal, expect in ((False, "+--"), (True, "┏")):
        buf = io.StringIO()
        console = Console(file=buf, width=60, force_terminal=terminal)
        t = table(console, title="results")
        t.add_column("key")
        t.add_row("test_accuracy")
        console.print(t)
        assert expect in buf.getvalue()
        assert terminal or not any(ord(c) > 127 for c in buf.getvalue())
