"""The one training skeleton every network's trainer follows (CenterNet, the monocular 3D
detector, the end-to-end PilotNet): one epoch rule, one learning-rate schedule, one budget
rule, one set of stop labels.

* **Schedule**: AdamW's learning rate falls along a cosine from its peak to 0 over the
  planned optimiser steps (``epochs x steps per epoch``), stepped once per batch
  (:func:`cosine_per_step`).  It never reads the clock: the same recipe gives the same
  network on a quiet machine and on a busy one.
* **Epochs**: at most ``epochs``; after each, the trainer validates and hands
  :meth:`EpochLoop.end_epoch` a score (higher is better).  ``keep="best"`` saves an epoch
  that beats every earlier one and stops after ``patience`` epochs without one
  (``"early_stopping"``); ``keep="last"`` saves every epoch and never stops early (fixed
  compute: the scaling study).
* **Budget**: ``budget_s`` > 0 only cuts a run short (``"budget"``), checked after every
  batch (:meth:`EpochLoop.over_budget`); the cut is loud (:meth:`EpochLoop.warn_if_cut`:
  a warning with the samples seen of those planned), and the checkpoint records it.
* **Stop labels** (:data:`STOP_REASONS`): ``epochs`` (all planned epochs ran),
  ``early_stopping``, ``budget``.

This module lives in ``perception`` because the detectors' trainers and the end-to-end
trainer (``agents``, which may import ``perception``) both use it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

STOP_REASONS = ("epochs", "early_stopping", "budget")
"""Why a training run ended, as checkpoints and results record it."""
KEEP = ("best", "last")


def cosine_per_step(
    optimiser: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate along a cosine from the optimiser's peak to 0 over ``total_steps``
    optimiser steps; ``step()`` it after every batch."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(int(total_steps), 1))


@dataclass
class EpochLoop:
    """The epoch, early-stopping and budget bookkeeping of one training run."""

    epochs: int
    patience: int
    keep: str = "best"
    budget_s: float = 0.0
    clock: Callable[[], float] | None = None
    """The budget's clock (None: ``time.time``, read at each call, so a test can fake it)."""
    started: float = field(init=False, default=0.0)
    best: float = field(init=False, default=-math.inf)
    best_epoch: int = field(init=False, default=0)
    epochs_done: int = field(init=False, default=0)
    stopped: str = field(init=False, default="epochs")

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.keep not in KEEP:
            raise ValueError(f"unknown keep {self.keep!r}; known: {', '.join(KEEP)}")
        if self.budget_s < 0:
            raise ValueError(f"budget_s must be >= 0, got {self.budget_s}")
        self.started = self._now()

    def _now(self) -> float:
        return (self.clock or time.time)()

    def elapsed_s(self) -> float:
        return self._now() - self.started

    def over_budget(self) -> bool:
        """True (and the run marked ``"budget"``) once the budget is spent; check it after
        every batch and end the epoch when it says so."""
        if self.budget_s > 0 and self.elapsed_s() > self.budget_s:
            self.stopped = "budget"
        return self.stopped == "budget"

    def end_epoch(self, score: float) -> tuple[bool, bool]:
        """Record epoch ``epochs_done + 1``'s validation ``score`` (higher is better; a NaN
        never counts as better); returns ``(save, stop)``: whether to save this epoch's
        weights (``keep="last"``: always, and it becomes the kept epoch), and whether the run
        ends here."""
        self.epochs_done += 1
        save = bool(score > self.best) or self.keep == "last"
        if save:
            self.best, self.best_epoch = float(score), self.epochs_done
        if self.stopped == "budget":
            return save, True
        if self.keep == "best" and self.epochs_done - self.best_epoch >= self.patience:
            self.stopped = "early_stopping"
            return save, True
        return save, self.epochs_done >= self.epochs

    def warn_if_cut(self, out, samples: int, planned: int) -> None:
        """The budget's cut, loudly: this network is not the one its recipe describes."""
        if self.stopped != "budget":
            return
        print(
            f"warning: {out}: the {self.budget_s:g} s budget stopped training after "
            f"{self.epochs_done} of {self.epochs} epochs ({samples:,} of {planned:,} samples); "
            "the network is not its recipe's (no budget: the same network on any machine)",
            file=sys.stderr,
            flush=True,
        )

    def record(self) -> dict:
        """What a checkpoint says about how the run ended."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_trained": self.epochs_done,
            "stopped": self.stopped,
        }
