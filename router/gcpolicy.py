"""The garbage collector's settings for a long-running router process.

The engine decodes and drops tens of thousands of small containers per busy second (alerts,
their labels, pydantic models). Reference counting frees nearly all of them; the cyclic
collector only has to find cycles, yet with Python's default (a young collection every 700
allocations, a middle one every 10th) it walked them so often that `bench/soak_engine.py`
measured 15-20% of the engine's CPU in the collector, and its 9-19 ms middle collections
were the seconds that set the p99 of a batch. Collecting young objects every 10,000
allocations, and freezing what the process holds once it has started (modules, config, the
restored state: long-lived, never garbage) out of the full collections, keeps cycles
collected while doing a fraction of the walking.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune(young: int = YOUNG_THRESHOLD) -> None:
    """Collect what is garbage now, freeze the rest, and collect young objects every `young`
    allocations (the older generations keep Python's ratios)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
