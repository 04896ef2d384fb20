"""The voice dataset: reading speech layouts, skipping bad files, choosing speakers, spectrograms,
the cache (reuse and invalidation), the split, loading into the stages, the CLI, and a tiny run.

All audio is written here (tests/voicefiles.py: harmonic stacks with a speaker's own pitch and
formants); nothing depends on espeak-ng.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nasgal.cli.main import main
from nasgal.data import DataError, DeviceLoader, VoiceSettings, load_dataset, prepare_voice
from nasgal.data.audio import read_audio, resample
from nasgal.data.spectrogram import log_spectrogram
from nasgal.data.voice import INDEX, MANIFEST, PIECE_INDEX, PIECES
from nasgal.data.voice_scan import scan_source, select_speakers, split_pieces
from nasgal.errors import NasgalError

from voicefiles import write_plain, write_speech, write_voxceleb

#: Small settings: 1 s pieces, 32x32 images, 4 test pieces per speaker.
SMALL = VoiceSettings(segment_seconds=1.0, size=32, test_pieces=4)


def _index(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / PIECE_INDEX) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resample_keeps_a_tone_and_the_length(rate):
    t = torch.arange(rate) / rate  # 1 s
    y = resample(torch.sin(2 * math.pi * 440 * t), rate, 16_000)
    assert y.shape == (16_000,)
    ref = torch.sin(2 * math.pi * 440 * torch.arange(16_000) / 16_000)
    assert (y - ref)[300:-300].abs().max() < 0.01  # the edges see the zeros beyond the signal


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = torch.arange(44_100) / 44_100
    y = resample(torch.sin(2 * math.pi * 9000 * t), 44_100, 16_000)  # 9 kHz > 8 kHz Nyquist
    assert y[300:-300].pow(2).mean().sqrt() < 0.01


def test_read_audio_mixes_stereo_to_mono_at_16k(tmp_path):
    path = tmp_path / "a.flac"
    x = np.stack([np.full(22050, 0.5), np.full(22050, -0.1)], axis=1).astype(np.float32)  # 0.5 s stereo
    sf.write(str(path), x, 44100)
    y = read_audio(path)
    assert y.dtype == torch.float32 and y.shape == (8000,)
    assert abs(float(y[4000]) - 0.2) < 1e-3  # the mean of the channels


# --------------------------------------------------------------------------- layouts and bad files


def test_voxceleb_layout_and_wav_subfolder(tmp_path):
    write_voxceleb(tmp_path / "vox1" / "wav", speakers=3, videos=3, per_video=2, seconds=2.2)
    src = scan_source(tmp_path / "vox1")  # the archive's wav/ folder is found
    assert src.layout == "voxceleb1" and src.root.name == "wav"
    assert sorted(src.speakers) == ["id10001", "id10002", "id10003"]
    u = src.speakers["id10001"][0]
    assert u.video == "vid0abcDEF" and u.rel == "id10001/vid0abcDEF/00001.wav"
    r = prepare_voice(tmp_path / "vox1", tmp_path / "out", SMALL.model_copy(update={"split_by": "video"}))
    assert r.manifest["layout"] == "voxceleb1" and r.manifest["speakers"] == ["id10001", "id10002", "id10003"]
    assert r.manifest["shape"] == [36, 1, 32, 32]  # 3 speakers x 6 files x 2 pieces
    idx = _index(r.folder)
    utts = r.manifest["utterances"]
    videos = {split: {utts[u].rsplit("/", 1)[0] for u in idx["utterance"][idx["split"] == code]} for split, code in
              (("train", 0), ("test", 1))}
    assert not videos["train"] & videos["test"]  # split_by video: no video on both sides


def test_plain_layout_wav_and_flac_at_any_rate(tmp_path):
    root = tmp_path / "plain"
    write_plain(root, speakers=2, utterances=4, seconds=2.5, rate=16_000)
    write_plain(root, speakers=2, utterances=0)
    for u in range(4):  # a third speaker in FLAC, 44.1 kHz stereo
        write_speech(root / "spk2" / f"utt{u}.flac", 2, 2.5, rate=44_100, seed=u, channels=2)
    r = prepare_voice(root, tmp_path / "out", SMALL)
    assert r.manifest["layout"] == "plain" and r.manifest["speakers"] == ["spk0", "spk1", "spk2"]
    assert [s["pieces"] for s in r.manifest["summary"]] == [8, 8, 8]
    assert r.pieces == 24 and not r.skipped


def test_unreadable_and_too_short_files_are_named_and_skipped(tmp_path, capsys):
    root = write_plain(tmp_path / "src", speakers=2, utterances=6, seconds=2.2)
    (root / "spk0" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "spk1" / "empty.flac").write_bytes(b"")
    write_speech(root / "stray.wav", 0, 1.0)  # not in a speaker folder
    write_speech(root / "spk1" / "short.wav", 1, 0.4)
    code = main(["datasets", "prepare", "voice", str(root), "--out", str(tmp_path / "out"), "--segment-seconds", "1",
                 "--size", "32", "--test-pieces", "4", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "skipped spk0/broken.wav: unreadable" in err and "skipped spk1/empty.flac: unreadable" in err
    assert "skipped spk1/short.wav: too short: 0.40 s, a piece is 1 s" in err
    assert "ignored 1 audio file(s) outside any speaker folder: stray.wav" in err
    assert "Traceback" not in err + out
    manifest = json.loads(next((tmp_path / "out").glob("*/manifest.json")).read_text())
    summary = {s["speaker"]: s for s in manifest["summary"]}
    assert summary["spk0"]["files"] == 6 and summary["spk0"]["skipped"] == 1
    assert summary["spk1"]["files"] == 6 and summary["spk1"]["skipped"] == 2
    assert "spk1" in out and "train and 8 test pieces of 32×32" in out  # the per-speaker table and the total


def test_bad_sources_are_clear_errors(tmp_path, capsys):
    assert main(["datasets", "prepare", "voice", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    (tmp_path / "empty" / "spk0").mkdir(parents=True)
    assert main(["datasets", "prepare", "voice", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert main(["datasets", "prepare", "voice", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                 "--segment-seconds", "0"]) == 1
    write_plain(tmp_path / "plain", speakers=2, utterances=2, seconds=1.0)
    assert main(["datasets", "prepare", "voice", str(tmp_path / "plain"), "--out", str(tmp_path / "o"),
                 "--split-by", "video"]) == 1
    err = capsys.readouterr().err
    assert "voice source" in err and "does not exist" in err
    assert "has no speaker folders with .wav or .flac files" in err and "Hint:" in err
    assert "segment_seconds (--segment-seconds)" in err
    assert "split_by 'video' needs videos" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- selection and split


def test_selection_takes_the_speakers_whose_speech_time_differs_least():
    totals = {"a": 10.0, "b": 11.0, "c": 30.0, "d": 31.0, "e": 31.5, "f": 60.0}
    assert select_speakers(totals, 3) == ["c", "d", "e"]  # spread 1.5; a,b,c spread 20
    assert select_speakers(totals, 2) == ["d", "e"]  # spread 0.5
    assert select_speakers(totals, None) == sorted(totals)
    # ties in spread go to the window with more speech
    assert select_speakers({"a": 1.0, "b": 2.0, "c": 8.0, "d": 9.0}, 2) == ["c", "d"]
    with pytest.raises(DataError, match="only 4 speakers"):
        select_speakers({"a": 1.0, "b": 2.0, "c": 8.0, "d": 9.0}, 5)


def test_speakers_option_applies_the_rule(tmp_path):
    root = tmp_path / "src"
    for spk, files in (("s0", 6), ("s1", 9), ("s2", 10), ("s3", 14)):
        for u in range(files):
            write_speech(root / spk / f"{u}.wav", int(spk[1]), 1.1, seed=u)
    r = prepare_voice(root, tmp_path / "out", SMALL.model_copy(update={"speakers": 2}))
    assert r.manifest["speakers"] == ["s1", "s2"]  # 9 and 10 files: the closest totals
    notes = {s["speaker"]: s["note"] for s in r.manifest["summary"]}
    assert notes["s0"] == notes["s3"] == "not among the 2 speakers chosen"


def test_split_is_deterministic_and_utterance_disjoint(tmp_path):
    root = write_plain(tmp_path / "src", speakers=3, utterances=7, seconds=3.2)
    a = prepare_voice(root, tmp_path / "a", SMALL)
    b = prepare_voice(root, tmp_path / "b", SMALL)
    c = prepare_voice(root, tmp_path / "c", SMALL.model_copy(update={"seed": 1}))
    ia, ib, ic = _index(a.folder), _index(b.folder), _index(c.folder)
    assert np.array_equal(ia["split"], ib["split"]) and np.array_equal(ia["label"], ib["label"])
    assert not np.array_equal(ia["split"], ic["split"])
    for idx in (ia, ic):
        for label in range(3):
            mine = idx["label"] == label
            assert int((idx["split"][mine] == 1).sum()) == 4  # exactly test_pieces
            train_utts = set(idx["utterance"][mine & (idx["split"] == 0)])
            test_utts = set(idx["utterance"][mine & (idx["split"] == 1)])
            assert train_utts and test_utts and not train_utts & test_utts
    # 3 pieces per file: 4 test pieces take 2 files, the second gives 1 piece, 2 pieces go unused
    assert a.manifest["pieces"] == {"train": 45, "test": 12, "unused": 6}


def test_split_by_piece_uses_every_piece():
    groups = [(f"u{i}", 3) for i in range(4)]
    test, train = split_pieces(groups, 5, seed=0, speaker="x")
    assert len(test) == 5 and len(train) == 6  # one piece of the last test utterance is left out
    test_p, train_p = split_pieces([(f"p{i}", 1) for i in range(12)], 5, seed=0, speaker="x")
    assert len(test_p) == 5 and len(train_p) == 7
    assert split_pieces(groups, 12, seed=0, speaker="x") is None  # nothing left to train on
    assert split_pieces(groups, 5, seed=0, speaker="x") == (test, train)  # seeded


# --------------------------------------------------------------------------- spectrograms and cache


def test_spectrogram_is_uint8_square_and_loudness_free():
    t = torch.arange(16_000) / 16_000
    low = torch.sin(2 * math.pi * 300 * t)
    images = log_spectrogram(torch.stack([low, 0.1 * low]), n_fft=512, hop=160, size=48, db_range=80.0)
    assert images.dtype == torch.uint8 and images.shape == (2, 1, 48, 48)
    assert (images[0].int() - images[1].int()).abs().max() <= 1  # scaled by each piece's own peak
    rows = images[0, 0].float().mean(1)
    assert rows[-6:].mean() > rows[:6].mean() + 50  # low frequencies are the bottom rows


def test_cache_is_reused_with_the_same_settings_and_rebuilt_with_others(tmp_path):
    root = write_plain(tmp_path / "src", speakers=2, utterances=6, seconds=2.1)
    out = tmp_path / "out"
    first = prepare_voice(root, out, SMALL)
    stamp = (first.folder / PIECES).stat().st_mtime_ns
    again = prepare_voice(root, out, SMALL)
    assert again.reused and again.folder == first.folder
    assert (first.folder / PIECES).stat().st_mtime_ns == stamp
    other = prepare_voice(root, out, SMALL.model_copy(update={"size": 24}))
    assert not other.reused and other.folder != first.folder and (first.folder / MANIFEST).is_file()
    assert json.loads((out / INDEX).read_text())["current"] == other.folder.name
    assert load_dataset("voice", out, split="train").info.size == (24, 24)  # --data-dir gives the current one
    assert load_dataset("voice", first.folder, split="train").info.size == (32, 32)  # or a cache folder itself
    write_speech(root / "spk0" / "utt00.wav", 0, 2.1, seed=99)  # a changed file: a new cache
    changed = prepare_voice(root, out, SMALL)
    assert not changed.reused and changed.folder not in (first.folder, other.folder)
    assert not list(out.glob(".*.tmp"))  # no temporary folder left behind
    # a damaged cache is not trusted: it is built again
    (changed.folder / PIECES).write_bytes(b"\x93NUMPY")
    assert not prepare_voice(root, out, SMALL).reused


def test_loaded_splits_feed_the_loader_from_memory_or_disk(tmp_path):
    root = write_plain(tmp_path / "src", speakers=3, utterances=5, seconds=2.0)
    prepare_voice(root, tmp_path / "out", SMALL)
    train = load_dataset("voice", tmp_path / "out", split="train")
    test = load_dataset(f"voice:{tmp_path / 'out'}", split="test")
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 32, 32)
    assert train.info.classes == 3 and train.info.class_names == ("spk0", "spk1", "spk2")
    assert test.class_counts().tolist() == [4, 4, 4] and len(train) == 18
    disk = load_dataset("voice", tmp_path / "out", split="train", memory_budget=0)
    assert disk.storage == "disk-cache" and disk.cache_path.name == PIECES
    mem_batches = list(DeviceLoader(train, batch_size=4, seed=3))
    disk_batches = list(DeviceLoader(disk, batch_size=4, seed=3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(mem_batches, disk_batches))


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="needs the folder it was prepared into"):
        load_dataset("voice", split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no prepared voice dataset"):
        load_dataset("voice", tmp_path / "empty", split="train")
    root = write_plain(tmp_path / "src", speakers=2, utterances=5, seconds=2.0)
    prepare_voice(root, tmp_path / "out", SMALL)
    with pytest.raises(DataError, match="holds 32×32 spectrograms, not 64×64") as err:
        load_dataset("voice", tmp_path / "out", split="train", image_size=64)
    assert "--size 64" in err.value.hint
    with pytest.raises(NasgalError, match="takes no path"):
        load_dataset("mnist:/x")


# --------------------------------------------------------------------------- a whole run


def test_tiny_run_on_synthetic_speech(tmp_path, capsys):
    root = write_plain(tmp_path / "src", speakers=3, utterances=7, seconds=2.0)
    assert main(["datasets", "prepare", "voice", str(root), "--out", str(tmp_path / "voice"), "--segment-seconds", "1",
                 "--size", "16", "--test-pieces", "4", "-q", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["speakers"] == ["spk0", "spk1", "spk2"] and printed["pieces"]["test"] == 12
    exp = tmp_path / "voice_tiny.toml"
    exp.write_text(f"""
name = "voice_tiny"
dataset = "voice"
data_dir = "{tmp_path / 'voice'}"
out = "{tmp_path / 'exp'}"
device = "cpu"
paper = "voxceleb1_min"

[search]
epochs = 1
cells = 3
channels = 4
batch_size = 4

[network]
cells = 3
channels = 4
stem = "stride2"

[train]
epochs = 1
batch_size = 8
lr = 0.05

[prune]
epochs = 1
batch_size = 8
keep_nodes = 0.5

[retrain]
inherit = false
epochs = 1
""", encoding="utf-8")
    assert main(["run", str(exp), "--quiet"]) == 0, capsys.readouterr().err
    net = json.loads((tmp_path / "exp" / "network.json").read_text())
    assert net["input"]["size"] == [16, 16] and net["input"]["channels"] == 1 and net["classes"] == 3
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "Dataset **voice**" in report and "Voice data: 3 speakers (plain layout)" in report
    assert "split by utterance (no utterance on both sides)" in report
    assert "| VGG16 | 87.30 | 134.67M |" in report and "| DARTS-GAL | 93.30 | 0.68M |" in report


# --------------------------------------------------------------------------- the espeak-ng set


def test_espeak_sentences_are_seeded_and_a_missing_program_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from nasgal.data import espeak

    assert espeak.sentences(3, seed=1) == espeak.sentences(3, seed=1) != espeak.sentences(3, seed=2)
    assert all(s.endswith(".") and 16 <= len(s.split()) <= 24 for s in espeak.sentences(5))
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    assert main(["datasets", "espeak", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "espeak-ng is not installed" in err and "apt-get install espeak-ng" in err


@pytest.mark.slow
@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_espeak_set_prepares_into_speakers(tmp_path):
    assert main(["datasets", "espeak", str(tmp_path / "e"), "--speakers", "3", "--utterances", "6"]) == 0
    r = prepare_voice(tmp_path / "e", tmp_path / "out", SMALL)
    assert r.manifest["speakers"] == ["en-us_m3", "en_f2", "en_m1"] and r.manifest["pieces"]["test"] == 12


def test_the_command_line_starts_without_torch():
    """`nasgal datasets` reads its options from VoiceSettings: importing it must not load torch
    (validate, render and diff stay fast and need no torch)."""
    import subprocess
    import sys

    code = "import sys, nasgal.cli.main; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
