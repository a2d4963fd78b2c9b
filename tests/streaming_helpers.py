"""Running a layer's `step` over a whole sequence, and its parameters, for the streaming tests."""

from __future__ import annotations

import jax
from jax.extend import core as jax_core
import jax.numpy as jnp

from ms_ssm_jax import streaming


def stepped_outputs(layer, variables, u):
  """`layer.step` from `layer.init_state` over every step of u `(B, L, H)` -> `(B, L, H)`.

  One jitted `lax.scan`, as a user would run it.
  """

  def run(variables, u):
    state = layer.apply(variables, u.shape[0], u.dtype, method="init_state")
    step = lambda state, u_t: layer.apply(variables, state, u_t, method="step")
    _, ys = jax.lax.scan(step, state, jnp.swapaxes(u, 0, 1))
    return jnp.swapaxes(ys, 0, 1)

  return jax.jit(run)(variables, u)


def prepared_outputs(layer, variables, u):
  """`streaming.prepare_layer` once, then its `step` over every step of u `(B, L, H)` ->
  `(B, L, H)`, in one jitted `lax.scan` that reads only the prepared arrays."""
  prepared = streaming.prepare_layer(layer, variables["params"])
  state = layer.apply(variables, u.shape[0], u.dtype, method="init_state")

  def run(prepared, state, u):
    _, ys = jax.lax.scan(prepared.step, state, jnp.swapaxes(u, 0, 1))
    return jnp.swapaxes(ys, 0, 1)

  return jax.jit(run)(prepared, state, u)


def to_float64(tree):
  return jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), tree)


def perturbed_variables(layer, width: int):
  """The layer's variables at init plus N(0, 0.1^2) noise: random parameters away from the
  init (which has a near-constant mixer, D = 1, ...), so that every one of them matters."""
  variables = layer.init(jax.random.key(1), jnp.zeros((1, 1, width)))
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  return jax.tree.unflatten(
      tree,
      [leaf + 0.1 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)])


def primitive_names(fn, *args) -> set[str]:
  """The primitives that `fn(*args)` traces to, nested jaxprs (jit, custom_jvp) included."""
  names = set()

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      names.add(eqn.primitive.name)
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else (param,):
          if isinstance(sub, jax_core.ClosedJaxpr):
            visit(sub.jaxpr)
          elif isinstance(sub, jax_core.Jaxpr):
            visit(sub)

  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return names
