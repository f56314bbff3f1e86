"""SB3 PPO around PilotNet: the features extractor and the weight maps between the two (see
:mod:`agents.rl.agent`)."""

from __future__ import annotations

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.e2e.model import SPEED_SCALE, PilotNet, PilotNetConfig, encode_pixels
from perception.checkpoint import check_state


class PilotNetExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: PilotNet's conv stack on the camera + speed/10 (+ one-hot command).

    SB3 hands images channel-first as floats in 0..255 (``normalize_images=False``; the
    network normalises as PilotNet does) and ``Discrete`` commands already one-hot, so the
    output is exactly what PilotNet's head takes: ``[conv features, speed / 10, command]``.
    """

    def __init__(self, observation_space, config: dict) -> None:
        cfg = PilotNetConfig.from_dict(config)
        net = PilotNet(cfg)
        super().__init__(observation_space, net.flat_features + cfg.aux_size)
        self.config = cfg
        self.features, self.pool = net.features, net.pool

    def forward(self, obs: dict) -> torch.Tensor:
        parts = [
            encode_pixels(self.features, self.pool, obs["bev"].float()),
            obs["speed"].float().reshape(-1, 1) * SPEED_SCALE,
        ]
        if self.config.use_command:
            parts.append(obs["command"].float())
        return torch.cat(parts, dim=1)


def head_sizes(net: PilotNet) -> list[int]:
    """The hidden widths of PilotNet's head (SB3's ``net_arch["pi"]``)."""
    linears = [m for m in net.head if isinstance(m, nn.Linear)]
    return [m.out_features for m in linears[:-1]]


def policy_kwargs(
    config: PilotNetConfig, log_std_init: float, value_arch: tuple[int, ...] = (64, 64)
) -> dict:
    net = PilotNet(config)
    return {
        "features_extractor_class": PilotNetExtractor,
        "features_extractor_kwargs": {"config": config.to_dict()},
        "net_arch": {"pi": head_sizes(net), "vf": list(value_arch)},
        "activation_fn": nn.ELU,
        "share_features_extractor": False,
        "normalize_images": False,
        "log_std_init": float(log_std_init),
    }


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)]


def _head_pairs(policy, net: PilotNet) -> list[tuple[nn.Linear, nn.Linear]]:
    """(PilotNet layer, SB3 layer) for the actor's head: PilotNet's hidden layers are the policy
    MLP, its output layer is ``action_net``."""
    mine, theirs = (
        _linears(net.head),
        _linears(policy.mlp_extractor.policy_net) + [policy.action_net],
    )
    if [tuple(m.weight.shape) for m in mine] != [tuple(m.weight.shape) for m in theirs]:
        raise ValueError("the PPO policy's head does not match PilotNet's")
    return list(zip(mine, theirs, strict=True))


def load_pilotnet_into_policy(policy, net: PilotNet) -> None:
    """Copy a PilotNet into an SB3 policy built by :func:`policy_kwargs`: the actor's convs,
    head and output layer, and the critic's convs (the value MLP starts fresh)."""
    if policy.pi_features_extractor.config != net.config:
        raise ValueError(
            f"the PPO policy is {policy.pi_features_extractor.config}, the network is {net.config}"
        )
    with torch.no_grad():
        for ext in (policy.pi_features_extractor, policy.vf_features_extractor):
            ext.features.load_state_dict(net.features.state_dict())
        for mine, theirs in _head_pairs(policy, net):
            theirs.load_state_dict(mine.state_dict())


def policy_to_pilotnet(policy) -> PilotNet:
    """The actor of an SB3 policy as a PilotNet (CPU, eval mode): its mean action."""
    net = PilotNet(policy.pi_features_extractor.config)
    with torch.no_grad():
        net.features.load_state_dict(
            {
                k: v.detach().cpu()
                for k, v in policy.pi_features_extractor.features.state_dict().items()
            }
        )
        for mine, theirs in _head_pairs(policy, net):
            mine.load_state_dict({k: v.detach().cpu() for k, v in theirs.state_dict().items()})
    return net.eval()


_ALIAS = "features_extractor."
"""SB3 keeps the actor's extractor under two names (``features_extractor`` is
``pi_features_extractor``); the state saved holds it once."""


def policy_state(policy) -> dict[str, torch.Tensor]:
    """The SB3 policy's tensors for ``policy.safetensors`` (each once, on the CPU)."""
    return {
        k: v.detach().cpu().contiguous()
        for k, v in policy.state_dict().items()
        if not k.startswith(_ALIAS)
    }


def load_policy_state(
    policy, state: dict[str, torch.Tensor], path: str = "policy.safetensors"
) -> None:
    """Load :func:`policy_state`'s tensors back; every name, shape and dtype must fit (a
    :class:`~perception.checkpoint.CheckpointError` naming the tensor otherwise)."""
    want = {k: v for k, v in policy.state_dict().items() if not k.startswith(_ALIAS)}
    check_state(want, state, path, "this PPO policy")
    policy.load_state_dict(state, strict=False)
