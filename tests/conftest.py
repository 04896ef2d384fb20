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

# Property-based tests (tests/test_properties.py): a small example budget by default, without
# deadlines (timing on a shared 2-core machine is noise); NASGAL_HYPOTHESIS_PROFILE=long for a
# long run.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
settings.load_profile(os.environ.get("NASGAL_HYPOTHESIS_PROFILE", "ci"))
