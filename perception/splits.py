"""Train / validation splits by episode, shared by every trainer (detector, end-to-end policy).

Frames of one episode (a scenario and seed) look alike, so a split by frame would validate on
near-copies of training frames; here every episode lies wholly on one side.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def split_by_episode(
    episodes: Sequence[Hashable], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation frame indices of frames whose episodes are ``episodes`` (one key per
    frame); a ``val_fraction`` of the episodes (at least one, none when there is only one) is
    held out, drawn with ``seed``.  No episode contributes to both."""
    keys = sorted(set(episodes))
    rng = np.random.default_rng(seed)
    n_val = max(1, round(val_fraction * len(keys))) if len(keys) > 1 else 0
    val_keys = {keys[i] for i in rng.permutation(len(keys))[:n_val]}
    is_val = np.array([e in val_keys for e in episodes])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
