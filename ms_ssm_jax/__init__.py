"""ms_ssm_jax: multi-scale state space models and S5/LRU/S4D/S6 baselines in JAX/Flax."""

__version__ = "0.1.0"
