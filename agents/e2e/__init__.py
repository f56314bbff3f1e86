"""The end-to-end driver: camera frames (+ speed, + command) -> the normalised action.

* :mod:`agents.e2e.model`: PilotNet, its config and its scalar inputs;
* :mod:`agents.e2e.checkpoint`: a policy checkpoint (safetensors + JSON) written and read back;
* :mod:`agents.e2e.agent`: :class:`~agents.e2e.agent.E2EAgent`, the policy in the control loop;
* :mod:`agents.e2e.demos`: recorded demonstrations loaded for training;
* :mod:`agents.e2e.train`: behaviour cloning.

Inference (agent, model, checkpoint) imports no training module; the package imports
nothing itself, so ``import agents.e2e.agent`` stays as light as the agent is.
"""
