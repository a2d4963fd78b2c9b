"""MS-SSM (Karami et al., COLM 2025): wavelet decomposition, stream SSMs, scale mixer."""

from ms_ssm_jax.ms_ssm.layer import MSSSMLayer

__all__ = ["MSSSMLayer"]
