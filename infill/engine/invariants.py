"""Runtime checks of the sampler's invariants, off unless INFILL_CHECK_INVARIANTS=1 (the test suite sets it).

Each check reads a tensor back to the host; on CUDA that stalls the device once per check, so a normal
decode does none (the invariants are still stated in sampler.py and tested).
"""

from __future__ import annotations

import os

ENV_VAR = "INFILL_CHECK_INVARIANTS"


def enabled() -> bool:
    return os.environ.get(ENV_VAR) == "1"
