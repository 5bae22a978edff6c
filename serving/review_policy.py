"""Which predictions go to annotators: a random sample by default, at most so many an hour.

The default is measured: at the loop's real fine-tune budget, 200 labels picked at random taught the
model as much as the 200 least confident (street OKS AP 0.628 against 0.622, two seeds each;
benchmarks/flywheel_curve.py, docs/flywheel.md). So the confidence threshold is off (0) unless set,
and the random share fills the hourly cap: by default (`random_fraction=None`) it is the cap divided by
the traffic of the last hour, counted here per minute, so the labels bought spread over the hour
instead of going to its first requests. Flagging an image with a person the detector was unsure of
(missed or made up) is off by default too (`flag_uncertain`): on drawn street scenes it flagged 342
of 900 images, more than the cap, so on it would crowd the random sample out of the queue; and the
comparison did not measure it.
The hourly cap protects the annotators' queue from a flood when a bad model or odd traffic makes
everything look unsure.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence

LOW_CONFIDENCE = "low_confidence"
UNCERTAIN_PERSON = "uncertain_person"  # the detector was unsure whether someone is there (missed or phantom)
RANDOM = "random"
WINDOW_S = 3600.0  # the cap's window, and the traffic the automatic share is measured over
MIN_SPAN_S = 60.0  # the automatic share reads at least a minute of traffic (the first requests are not a rate)


class ReviewPolicy:
    """Decides per prediction whether it is queued for review and why (not thread-safe: one event loop)."""

    def __init__(
        self,
        threshold: float,
        random_fraction: float | None,
        cap_per_hour: int,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_capped: Callable[[], object] | None = None,
        flag_uncertain: bool = False,
    ) -> None:
        self.threshold = threshold
        self.flag_uncertain = flag_uncertain
        self.random_fraction = random_fraction
        self.cap_per_hour = cap_per_hour
        self._rng = random.Random(seed)
        self._clock = clock
        self._recent: deque[float] = deque()  # times (s) of queued items within the last hour
        self._on_capped = on_capped
        self._started = clock()
        self._minutes: deque[list[int]] = deque()  # [minute, predictions seen] over the last hour

    def share(self) -> float:
        """The random share now: the fixed `random_fraction`, or (None) the cap over the last hour's traffic."""
        if self.random_fraction is not None:
            return self.random_fraction
        now = self._clock()
        self._forget(now)
        seen = sum(count for _, count in self._minutes)
        span = min(WINDOW_S, max(MIN_SPAN_S, now - self._started))
        hourly = seen * WINDOW_S / span
        return 1.0 if hourly <= self.cap_per_hour else self.cap_per_hour / hourly

    def _count(self) -> None:
        now = self._clock()
        minute = int(now // 60)
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1][1] += 1
        else:
            self._minutes.append([minute, 1])
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._minutes and (now // 60 - self._minutes[0][0]) * 60 >= WINDOW_S:
            self._minutes.popleft()

    def wanted(self, pose_scores: Sequence[float], uncertain_persons: int = 0) -> str | None:
        """The reason this prediction deserves review ignoring the cap, or None.

        `uncertain_persons`: people the detector scored close to its threshold, on either side (a
        person it may have missed, or one it may have made up); with `flag_uncertain`, their images
        are queued to teach the detector.
        """
        if pose_scores and min(pose_scores) < self.threshold:
            return LOW_CONFIDENCE
        if self.flag_uncertain and uncertain_persons > 0:
            return UNCERTAIN_PERSON
        share = self.share()
        if share > 0 and self._rng.random() < share:
            return RANDOM
        return None

    def decide(self, pose_scores: Sequence[float], uncertain_persons: int = 0) -> str | None:
        """'low_confidence', 'uncertain_person', 'random' or None for a prediction whose poses scored `pose_scores`."""
        if self.random_fraction is None:
            self._count()  # every prediction decided on is traffic the automatic share reads
        reason = self.wanted(pose_scores, uncertain_persons)
        if reason is None:
            return None
        now = self._clock()
        while self._recent and now - self._recent[0] >= WINDOW_S:
            self._recent.popleft()
        if len(self._recent) >= self.cap_per_hour:
            if self._on_capped is not None:
                self._on_capped()
            return None
        self._recent.append(now)
        return reason
