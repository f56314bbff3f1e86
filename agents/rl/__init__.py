"""The reinforcement-learning baseline: PilotNet trained with Stable-Baselines3 PPO.

* :mod:`agents.rl.agent`: :class:`~agents.rl.agent.PPOAgent` (the ``ppo`` agent) and the
  checkpoint's file names;
* :mod:`agents.rl.policy`: PilotNet inside SB3's policy (features extractor, weight maps),
  imported only to train (by ``sim.pipelines.ppo``).
"""
