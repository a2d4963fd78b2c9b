"""Baseline SSM layers (S4D, S5, LRU, S6) and their math (init, discretization).

`SSM_PARAM_NAMES` is the contract between the layers and the optimizer (docs/DESIGN.md):
every parameter leaf with one of these names is an SSM parameter (eigenvalues, timescales,
input matrix) and gets the SSM learning rate and no weight decay. No other parameter in the
package may use these names.
"""

SSM_PARAM_NAMES: frozenset[str] = frozenset({
    # S5 (Smith et al. 2023): continuous-time eigenvalues.
    "Lambda_re",
    "Lambda_im",
    # LRU (Orvieto et al. 2023): exponential parameterization and complex input matrix.
    "nu_log",
    "theta_log",
    "gamma_log",
    "B_re",
    "B_im",
    # S4D (Gu et al. 2022) and the MS-SSM SISO streams.
    "A_re_log",
    "A_im",
    # S6 (Gu and Dao 2023).
    "A_log",
    "dt_bias",
    # Timescales and the input matrix, shared by several layers.
    "log_step",
    "B",
})
