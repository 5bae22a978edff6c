"""Prometheus metrics of one server: traffic, latency, batching, model version, confidence drift.

Each app gets its own registry, so several servers in one process (tests) never share counts.
With several worker processes (`posewheel serve --workers N` sets PROMETHEUS_MULTIPROC_DIR before
they start) every worker writes its values to that folder and /metrics, whichever worker answers
it, adds them up: counters and histograms over all workers, gauges over the live ones.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class ServingMetrics:
    """All metrics of a server; `render()` gives the Prometheus text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "posewheel_requests", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "posewheel_request_latency_seconds",
            "time from request start to response, seconds",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "posewheel_batch_size", "person crops per inference batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "posewheel_queue_depth",
            "requests waiting for an inference batch when one starts",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "posewheel_model_info",
            "the served model version (value 1; during a swap each worker's)",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._version: str | None = None
        self.pose_score = Histogram(
            "posewheel_pose_score",
            "confidence of each predicted pose (watch it drift)",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.keypoint_score = Histogram(
            "posewheel_keypoint_score", "confidence of each predicted keypoint", buckets=SCORE_BUCKETS, registry=r
        )
        self.reloads = Counter("posewheel_model_reloads", "models loaded and swapped in", registry=r)
        self.reload_failures = Counter(
            "posewheel_model_reload_failures", "artifacts refused by load or smoke test", registry=r
        )
        self.review_queued = Counter(
            "posewheel_review_queued", "predictions marked for review, by reason", ["reason"], registry=r
        )
        self.review_capped = Counter(
            "posewheel_review_capped", "predictions the review policy wanted but the hourly cap refused", registry=r
        )
        self.predlog_written = Counter("posewheel_predlog_written", "predictions written to the log", registry=r)
        self.predlog_errors = Counter(
            "posewheel_predlog_errors", "predictions whose log, image or review item failed to write", registry=r
        )
        self.predlog_dropped = Counter(
            "posewheel_predlog_dropped", "predictions not logged because the writer queue was full", registry=r
        )
        self.outbox_failed = Gauge(
            "posewheel_review_outbox_failed",
            "outbox files that are not valid review items, moved to <outbox>/failed/ (look at them)",
            registry=r,
            multiprocess_mode="max",
        )
        self.predlog_backlog = Gauge(
            "posewheel_predlog_backlog", "predictions waiting to be written", registry=r, multiprocess_mode="livesum"
        )

    def set_model(self, version: str) -> None:
        """Show `version` as the one served model."""
        old, self._version = self._version, version
        if old is not None and old != version:
            self.model_info.labels(version=old).set(0)  # a worker's shared file keeps what it last wrote
            self.model_info.remove(old)
        self.model_info.labels(version=version).set(1)

    def render(self) -> bytes:
        """The text exposition: this registry's, or with several workers all workers' together."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
