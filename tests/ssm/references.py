"""Float64 numpy evaluations of each baseline layer's equations, one Python loop over time.

Written from the papers' equations (see each layer's docstring), independently of the layer
code: they share only the parameter names. `p` is a layer's params dict converted to numpy;
`u` is `(B, L, H)`. Bidirectional references run the reverse recurrence from
`lengths[b] - 1` down to 0 and leave the reverse states beyond the length at zero.
"""

from __future__ import annotations

import numpy as np


def _complex(parts: np.ndarray) -> np.ndarray:
  return parts[..., 0] + 1j * parts[..., 1]


def _loop(decay: np.ndarray, drive: np.ndarray, stop: int, reverse: bool = False) -> np.ndarray:
  """States of `x_t = decay_t x_{t -/+ 1} + drive_t` for t < stop; zero from `stop` on.

  `decay` and `drive` are `(L, ...)` for one sequence (decay may lack the time axis).
  """
  decay = np.broadcast_to(decay, drive.shape)
  states = np.zeros(drive.shape, np.result_type(decay, drive))
  x = np.zeros(drive.shape[1:], states.dtype)
  for t in (range(stop - 1, -1, -1) if reverse else range(stop)):
    x = decay[t] * x + drive[t]
    states[t] = x
  return states


def _lengths(u: np.ndarray, lengths) -> np.ndarray:
  return np.full(u.shape[0], u.shape[1]) if lengths is None else np.asarray(lengths)


def s4d(p, u, lengths=None, *, bidirectional=False):
  """S4D: ZOH per channel, `2 Re(C x)` for complex A, `C x` for real A."""
  is_complex = "A_im" in p
  if is_complex:
    a = -np.exp(p["A_re_log"]) + 1j * p["A_im"]
    b, c = _complex(p["B"]), _complex(p["C"])
  else:
    a, b, c = -np.exp(p["A_re_log"]), p["B"], p["C"]
  step = np.exp(p["log_step"])[:, None]
  a_bar = np.exp(a * step)
  b_bar = (a_bar - 1.0) / a * b  # (H, n)
  scale = 2.0 if is_complex else 1.0
  y = np.zeros(u.shape)
  for i, stop in enumerate(_lengths(u, lengths)):
    drive = b_bar * u[i][:, :, None]  # (L, H, n)
    y[i] = scale * np.real(np.einsum("thn,hn->th", _loop(a_bar, drive, u.shape[1]), c))
    if bidirectional:
      c_reverse = _complex(p["C_reverse"]) if is_complex else p["C_reverse"]
      states = _loop(a_bar, drive, stop, reverse=True)
      y[i] += scale * np.real(np.einsum("thn,hn->th", states, c_reverse))
  return y + p["D"] * u


def s5(p, u, lengths=None, *, clip_eigs=False, bidirectional=False):
  """S5: one MIMO diagonal SSM, ZOH, `2 Re(C x)` (one eigenvalue of each conjugate pair)."""
  lam_re = np.minimum(p["Lambda_re"], -1e-4) if clip_eigs else p["Lambda_re"]
  lam = lam_re + 1j * p["Lambda_im"]
  lam_bar = np.exp(lam * np.exp(p["log_step"][:, 0]))
  b_bar = ((lam_bar - 1.0) / lam)[:, None] * _complex(p["B"])
  c = _complex(p["C"])
  y = np.zeros(u.shape)
  for i, stop in enumerate(_lengths(u, lengths)):
    drive = u[i] @ b_bar.T  # (L, P')
    forward = _loop(lam_bar, drive, u.shape[1])
    if not bidirectional:
      y[i] = 2.0 * np.real(forward @ c.T)
      continue
    backward = _loop(lam_bar, drive, stop, reverse=True)
    y[i] = 2.0 * np.real(forward @ c.T + backward @ _complex(p["C_reverse"]).T)
  return y + p["D"] * u


def lru(p, u, lengths=None, *, bidirectional=False):
  """LRU: `x_t = lambda x_{t-1} + gamma B u_t`, `y = Re(C x) + D u`."""
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  gamma = np.exp(p["gamma_log"])
  b = p["B_re"] + 1j * p["B_im"]
  c = p["C_re"] + 1j * p["C_im"]
  y = np.zeros(u.shape)
  for i, stop in enumerate(_lengths(u, lengths)):
    drive = gamma * (u[i] @ b.T)  # (L, N)
    y[i] = np.real(_loop(lam, drive, u.shape[1]) @ c.T)
    if bidirectional:
      c_reverse = p["C_reverse_re"] + 1j * p["C_reverse_im"]
      y[i] += np.real(_loop(lam, drive, stop, reverse=True) @ c_reverse.T)
  return y + p["D"] * u


def s6(p, u):
  """Selective SSM: per-token Delta, B, C; `exp(Delta A)` decay and `Delta B u` input."""
  a = -np.exp(p["A_log"])  # (H, N)
  n = a.shape[1]
  w_x, w_dt = p["x_proj"]["kernel"], p["dt_proj"]["kernel"]
  rank = w_dt.shape[0]
  y = np.zeros(u.shape)
  for i in range(u.shape[0]):
    x = np.zeros(a.shape)
    for t in range(u.shape[1]):
      projected = u[i, t] @ w_x
      dt_low, b_t, c_t = projected[:rank], projected[rank:rank + n], projected[rank + n:]
      delta = np.logaddexp(0.0, dt_low @ w_dt + p["dt_bias"])  # softplus, (H,)
      x = np.exp(delta[:, None] * a) * x + delta[:, None] * b_t[None, :] * u[i, t][:, None]
      y[i, t] = x @ c_t + p["D"] * u[i, t]
  return y
