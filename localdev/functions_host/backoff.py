"""Idle polling delays, shaped like the WebJobs SDK's randomized exponential backoff.

The first empty poll waits the minimum (100 ms); each further one adds
``minimum * 2**(n-1) * U(0.8, 1.2)`` until ``maxPollingInterval`` caps it. Finding a
message resets the delay to the minimum.
"""

from __future__ import annotations

import random
from datetime import timedelta

from localdev.functions_host.hostconfig import MIN_POLLING_INTERVAL

JITTER = 0.2


class PollingBackoff:
    def __init__(
        self,
        maximum: timedelta,
        minimum: timedelta = MIN_POLLING_INTERVAL,
        rng: random.Random | None = None,
    ) -> None:
        self.minimum = minimum.total_seconds()
        self.maximum = max(maximum.total_seconds(), self.minimum)
        self._rng = rng or random.Random()
        self._exponent = 0
        self._current = self.minimum

    def reset(self) -> None:
        """A message was found: poll again at the minimum delay."""
        self._exponent = 0
        self._current = self.minimum

    def next_delay(self) -> float:
        """Seconds to wait after an empty (or failed) poll."""
        if self._current < self.maximum:
            delay = self.minimum
            if self._exponent > 0:
                factor = self._rng.uniform(1 - JITTER, 1 + JITTER)
                delay += factor * 2 ** (self._exponent - 1) * self.minimum
            if delay < self.maximum:
                self._current = delay
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current
