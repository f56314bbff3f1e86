"""The one training skeleton (perception.training): its epoch, early-stopping, keep and
budget rules as a table, and the schedule that never reads the clock."""

import itertools
import math

import pytest
import torch

from perception.training import EpochLoop, cosine_per_step


def _run(loop: EpochLoop, scores) -> list[tuple[bool, bool]]:
    out = []
    for score in scores:
        out.append(loop.end_epoch(score))
        if out[-1][1]:
            break
    return out


@pytest.mark.parametrize(
    ("keep", "patience", "scores", "saves", "stopped", "best_epoch"),
    [
        ("best", 2, [1, 2, 3, 4], [True] * 4, "epochs", 4),  # all planned epochs ran
        ("best", 2, [3, 1, 2, 5], [True, False, False], "early_stopping", 1),
        (
            "best",
            3,
            [1, math.nan, 0, 2],
            [True, False, False, True],
            "epochs",
            4,
        ),  # NaN: not better
        ("last", 1, [3, 1, 2, 0], [True] * 4, "epochs", 4),  # fixed compute: the last epoch kept
    ],
)
def test_the_epoch_rule(keep, patience, scores, saves, stopped, best_epoch):
    loop = EpochLoop(epochs=4, patience=patience, keep=keep)
    steps = _run(loop, scores)
    assert [s for s, _ in steps] == saves
    assert loop.stopped == stopped and loop.best_epoch == best_epoch
    assert loop.record() == {
        "best_epoch": best_epoch,
        "epochs_trained": len(saves),
        "stopped": stopped,
    }


def test_a_budget_only_cuts_short_and_says_so(capsys):
    ticks = itertools.count()
    loop = EpochLoop(epochs=10, patience=5, budget_s=250.0, clock=lambda: 100.0 * next(ticks))
    assert not loop.over_budget()  # 100 s in
    assert not loop.over_budget()  # 200 s
    assert loop.over_budget() and loop.stopped == "budget"  # 300 s > 250 s
    assert loop.end_epoch(1.0) == (True, True)  # the epoch's weights are saved, the run ends
    loop.warn_if_cut("OUT", samples=640, planned=6400)
    assert "250 s budget stopped training after 1 of 10 epochs (640 of 6,400" in (
        capsys.readouterr().err
    )
    unbudgeted = EpochLoop(epochs=2, patience=1, clock=lambda: 1e9 * next(ticks))
    assert not unbudgeted.over_budget()  # no budget: the clock never matters


def test_bad_settings_are_refused_with_the_value():
    with pytest.raises(ValueError, match="unknown keep 'first'"):
        EpochLoop(epochs=2, patience=1, keep="first")
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        EpochLoop(epochs=0, patience=1)


def test_the_schedule_falls_along_a_cosine_over_the_planned_steps():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = cosine_per_step(opt, total_steps=10)
    lrs = []
    for _ in range(10):
        opt.step()
        schedule.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(0.5e-3)  # half way: half the peak
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in itertools.pairwise(lrs))
