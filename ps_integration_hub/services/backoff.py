"""Exponential backoff with full jitter."""

import random


def backoff_delay(
    attempt: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): a uniform
    draw in [exp / 2, exp], so that retries of a burst spread out but never come sooner
    than half the nominal delay.
    """
    exp = min(cap, base * (2 ** max(attempt - 1, 0)))
    draw = (rng or random).uniform(0.5, 1.0)
    return exp * draw
