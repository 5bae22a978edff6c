"""A benchmark's `--variant` text becomes the settings it names (tests/support/variants.py)."""

from __future__ import annotations

import pytest

from tests.support.variants import parse_variant


def test_a_variant_reads_numbers_lists_and_several_keys() -> None:
    assert parse_variant("crops2=distill_batch=2,lr=1e-4") == ("crops2", {"distill_batch": 2, "lr": 0.0001})
    name, values = parse_variant("r384=finetune_input_height=384,finetune_scale=[0.8,2.0],channels_last=false")
    assert name == "r384"
    assert values == {"finetune_input_height": 384, "finetune_scale": [0.8, 2.0], "channels_last": False}


@pytest.mark.parametrize("text", ["baseline", "x=lr", "x=lr=1,batch"])
def test_a_malformed_variant_says_what_it_expected(text: str) -> None:
    with pytest.raises(SystemExit, match="--variant"):
        parse_variant(text)
