"""``drive train dagger``: what a DAgger run refuses, before it does any work."""

from __future__ import annotations

import pytest

from agents.e2e.train import E2ETrainConfig, train_e2e
from sim.pipelines.dagger import DaggerConfig, run_dagger
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.scenarios import get_scenario


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny bird's-eye policy trained on two short lane-keep episodes (its data: lane-keep)."""
    root = tmp_path_factory.mktemp("dagger")
    record_dataset(
        get_scenario("lane-keep", duration_s=2.0),
        [21, 22],
        root / "demos",
        noise=NoiseConfig(0.3),
        progress=False,
    )
    train_e2e(
        root / "demos",
        root / "policy",
        E2ETrainConfig(model="pilotnet-s", epochs=1, batch_size=32),
        device="cpu",
        progress=False,
    )
    return root / "policy"


@pytest.mark.parametrize(
    ("scenario", "why"),
    [
        ("lane-keep:night", "visual conditions stay unseen"),  # trained in daylight only
        ("highway", "trains one policy"),  # another policy's demos
        ("lane-keep:noise=2", "noise=2"),  # demos are recorded without faults
    ],
)
def test_dagger_refuses_a_scenario_it_cannot_record_or_aggregate_before_any_round(
    policy, tmp_path, scenario, why
):
    out = tmp_path / "dagger"
    config = DaggerConfig(rounds=1, episodes=1, eval_episodes=1, workers=1, duration_s=2.0)
    recipe = E2ETrainConfig(model="pilotnet-s", epochs=1)
    with pytest.raises(ValueError, match="--scenario") as refused:
        run_dagger(policy, out, config, recipe, scenario=scenario, device="cpu", progress=False)
    assert why in str(refused.value) and scenario in str(refused.value)
    assert not out.exists()  # nothing scored, recorded or trained: no folder
