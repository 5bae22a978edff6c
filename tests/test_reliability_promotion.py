"""Promotion never makes a model production on metrics it does not have: NaN (an empty holdout),
infinity, a missing holdout or metric are refused with a message that says which."""

from __future__ import annotations

import math

import pytest

from flywheel.promotion import decide

NAN, INF = math.nan, math.inf


def _m(studio: object, street: object) -> dict:
    return {"studio": {"oks_ap": studio}, "street": {"oks_ap": street}}


@pytest.mark.parametrize(
    ("candidate", "production", "named"),
    [
        (_m(0.9, NAN), _m(0.9, 0.3), "candidate's street OKS AP is nan"),
        (_m(NAN, 0.9), _m(0.9, 0.3), "candidate's studio OKS AP is nan"),
        (_m(0.9, 0.9), _m(NAN, NAN), "production's street OKS AP is nan"),
        (_m(0.9, 0.9), _m(0.9, NAN), "production's street OKS AP is nan"),
        (_m(0.9, INF), _m(0.9, 0.3), "candidate's street OKS AP is inf"),
        (_m(0.9, 0.9), _m(0.9, -INF), "production's street OKS AP is -inf"),
        ({"studio": {"oks_ap": 0.9}}, _m(0.9, 0.3), "candidate has no street OKS AP"),
        ({"studio": {"oks_ap": 0.9}, "street": {"pck": 0.9}}, _m(0.9, 0.3), "candidate has no street OKS AP"),
        (_m(0.9, "0.9"), _m(0.9, 0.3), "candidate has no street OKS AP"),
        (_m(0.9, None), _m(0.9, 0.3), "candidate has no street OKS AP"),
        ({}, None, "candidate has no street OKS AP"),  # even the first candidate needs its metrics
        (_m(NAN, NAN), None, "candidate's street OKS AP is nan"),
    ],
)
def test_nan_or_missing_metrics_never_promote_and_say_which(candidate: dict, production: dict | None,
                                                            named: str) -> None:  # fmt: skip
    decision = decide(candidate, production, street_margin=0.01, studio_tolerance=0.02)
    assert not decision.promote
    assert named in decision.reason, decision.reason


def test_a_nan_rule_never_promotes() -> None:
    assert not decide(_m(0.9, 0.9), _m(0.9, 0.3), street_margin=NAN, studio_tolerance=0.02).promote
    assert not decide(_m(0.9, 0.9), _m(0.9, 0.3), street_margin=0.01, studio_tolerance=NAN).promote


def test_finite_metrics_still_follow_the_rule() -> None:
    assert decide(_m(0.89, 0.60), _m(0.90, 0.30), 0.01, 0.02).promote
    assert decide(_m(0.5, 0.1), None, 0.01, 0.02).promote
    assert not decide(_m(0.80, 0.60), _m(0.90, 0.30), 0.01, 0.02).promote
