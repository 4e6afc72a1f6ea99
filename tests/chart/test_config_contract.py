"""The config file the chart renders is one the controller accepts: its strict config model parses it.

This is the contract between the chart and ``engine run``; a key the chart injects or a default it
sets that the model does not know would crash-loop every installation.
"""

from __future__ import annotations

import pytest

from engine.model.config import parse_config
from tests.chart import SCENARIOS, Scenario, rendered_config


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_rendered_config_is_accepted_by_the_controller_config_model(scenario: Scenario) -> None:
    config = dict(rendered_config(scenario.render()))
    parsed = parse_config(config, "config.yaml")
    assert parsed.id == config["id"]
    assert parsed.namespace == config["namespace"]
    assert parsed.agent_token_secret == config["agent-token-secret"]
