"""The paper's sampling in the GPU/cluster profiles: slot-weighted selection, a share cap with no fixed count."""

from __future__ import annotations

import pytest

from fi_spark.config import load_config
from fi_spark.config.match import MatchConfig
from fi_spark.match.match import template_cap


@pytest.mark.parametrize("profile", ["fineinstructions", "databricks", "emr"])
def test_cluster_profiles_sample_as_the_paper(profile: str) -> None:
    """Slot-count-weighted selection is on and the cap is 0.09% of all planned pairs with no fixed count."""
    match = load_config(profile).match
    assert (match.selection, match.max_per_template, match.max_template_share) == ("slot_weighted", None, 0.0009)
    assert match.token_budget == 1.0


@pytest.mark.parametrize(
    ("planned", "cap"),
    [(500, 1), (50_000, 45), (1_000_000, 900), (10_000_000, 9_000)],  # floor(0.0009 x N), at least 1
)
def test_share_cap_binds_at_scale(planned: int, cap: int) -> None:
    """The fineinstructions cap grows with the run: 9,000 at 10M pairs, where min(100, 0.0009 x N) stayed 100."""
    assert template_cap(load_config("fineinstructions").match, planned) == cap


def test_fixed_count_still_wins_where_set() -> None:
    """A profile that keeps a fixed count (the local default, 100) gets the tighter of the two caps."""
    cfg = MatchConfig(max_per_template=100, max_template_share=0.0009)
    assert (template_cap(cfg, 50_000), template_cap(cfg, 10_000_000)) == (45, 100)
    assert template_cap(MatchConfig(max_per_template=None, max_template_share=None), 10_000_000) is None
