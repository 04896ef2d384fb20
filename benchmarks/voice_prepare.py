"""Pieces per second of `nasgal datasets prepare voice`: reading, resampling, spectrograms, writing.

Writes speech-like files (the harmonic stacks of tests/voicefiles.py; a share of them at
44.1 kHz stereo, so resampling and mixing down are timed too) unless ``--source`` names a folder
of real speech, then prepares them into a fresh cache and prints one JSON line.

    python benchmarks/voice_prepare.py                      # 1,000 pieces of 3 s at 360x360
    python benchmarks/voice_prepare.py --source data/espeak  # any speech folder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nasgal.data import VoiceSettings, prepare_voice  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, help="speech folder (default: write synthetic files)")
    p.add_argument("--pieces", type=int, default=1000, help="synthetic pieces to write (about)")
    p.add_argument("--speakers", type=int, default=10)
    p.add_argument("--size", type=int, default=360)
    p.add_argument("--resampled-share", type=float, default=0.5, help="share of synthetic files at 44.1 kHz stereo")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.source
        if src is None:
            from voicefiles import write_speech

            src = Path(tmp) / "src"
            per_file = 3  # pieces: 9 s files
            files = -(-args.pieces // per_file)
            for i in range(files):
                spk = i % args.speakers
                native = (i // args.speakers) % 100 >= 100 * args.resampled_share
                write_speech(src / f"spk{spk:03d}" / f"{i:05d}.wav", spk, 9.0, 16_000 if native else 44_100,
                             seed=i, channels=1 if native else 2)
        settings = VoiceSettings(size=args.size, test_pieces=5)
        t0 = time.perf_counter()
        result = prepare_voice(src, Path(tmp) / "out", settings)
        total = time.perf_counter() - t0
    print(json.dumps({
        "pieces": result.pieces, "size": args.size, "seconds_pieces": round(result.seconds, 2),
        "pieces_per_s": round(result.rate, 1), "seconds_total": round(total, 2),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"), "cpus": os.cpu_count(),
        "machine": platform.machine(), "load_avg": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
