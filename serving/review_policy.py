"""Which predictions go to annotators: the unsure ones, a random sample, at most so many an hour.

Low confidence is checked first (it is the reason that teaches the model most); the random
sample catches confident mistakes that a threshold never sees. The hourly cap protects the
annotators' queue from a flood when a bad model or odd traffic makes everything look unsure.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence

LOW_CONFIDENCE = "low_confidence"
UNCERTAIN_PERSON = "uncertain_person"  # the detector was unsure whether someone is there (missed or phantom)
RANDOM = "random"


class ReviewPolicy:
    """Decides per prediction whether it is queued for review and why (not thread-safe: one event loop)."""

    def __init__(
        self,
        threshold: float,
        random_fraction: float,
        cap_per_hour: int,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_capped: Callable[[], object] | None = None,
    ) -> None:
        self.threshold = threshold
        self.random_fraction = random_fraction
        self.cap_per_hour = cap_per_hour
        self._rng = random.Random(seed)
        self._clock = clock
        self._recent: deque[float] = deque()  # times (s) of queued items within the last hour
        self._on_capped = on_capped

    def wanted(self, pose_scores: Sequence[float], uncertain_persons: int = 0) -> str | None:
        """The reason this prediction deserves review ignoring the cap, or None.

        `uncertain_persons`: people the detector scored close to its threshold, on either side (a
        person it may have missed, or one it may have made up); their images teach the detector.
        """
        if pose_scores and min(pose_scores) < self.threshold:
            return LOW_CONFIDENCE
        if uncertain_persons > 0:
            return UNCERTAIN_PERSON
        if self.random_fraction > 0 and self._rng.random() < self.random_fraction:
            return RANDOM
        return None

    def decide(self, pose_scores: Sequence[float], uncertain_persons: int = 0) -> str | None:
        """'low_confidence', 'uncertain_person', 'random' or None for a prediction whose poses scored `pose_scores`."""
        reason = self.wanted(pose_scores, uncertain_persons)
        if reason is None:
            return None
        now = self._clock()
        while self._recent and now - self._recent[0] >= 3600.0:
            self._recent.popleft()
        if len(self._recent) >= self.cap_per_hour:
            if self._on_capped is not None:
                self._on_capped()
            return None
        self._recent.append(now)
        return reason
