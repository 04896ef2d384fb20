"""Test-session settings.

The test networks are tiny (a few cells of 4 channels on 8×8 or 28×28 images): for them torch's
intra-op threads cost more in coordination than they save, and on a 2-core machine shared with
other work they oversubscribe the cores. One thread per process, set before torch loads, makes
the suite several times faster and no less exact. Subprocesses (the command-line tests) inherit it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
