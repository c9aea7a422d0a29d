"""Orbax checkpoints of the whole TrainState: the last N, plus the best by eval bits/dim.

Each checkpoint is one PyTree item (orbax's PyTreeCheckpointHandler; a StandardSave
checkpoint has the same layout and reads alike), so a restore may read a part of it: the
params alone, without the optimizer state (`restore_fields`).

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a kill mid-write never leaves a half-written latest step. A
checkpoint that is nevertheless unreadable (truncated or corrupted files) is
skipped on restore, falling back to the previous one, with a warning.
"""
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import orbax.checkpoint as ocp
from absl import logging


def saved_steps(workdir: str) -> List[int]:
  """The steps of the checkpoints saved in `workdir` (none if it has no checkpoints/), found
  without creating anything."""
  return sorted(ocp.utils.checkpoint_steps(os.path.join(workdir, 'checkpoints')))


def _restore_args(abstract: Any, partial: bool = False) -> ocp.args.PyTreeRestore:
  """Restores the leaves of `abstract` (ShapeDtypeStructs with shardings); `partial`: those only."""
  return ocp.args.PyTreeRestore(abstract, ocp.checkpoint_utils.construct_restore_args(abstract),
                                partial_restore=partial)


class Checkpoints:
  """Save and restore-with-fallback of TrainStates under `workdir`."""

  def __init__(self, workdir: str, keep: int):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self.best_directory = os.path.abspath(os.path.join(workdir, 'best'))
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=False)
    handler = ocp.PyTreeCheckpointHandler  # One handler type per manager, for every call.
    self.latest = ocp.CheckpointManager(self.directory, options=options, item_handlers=handler())
    best_options = ocp.CheckpointManagerOptions(
        max_to_keep=1, create=True, enable_async_checkpointing=False,
        best_fn=lambda metrics: metrics['eval_bpd'], best_mode='min')
    self.best = ocp.CheckpointManager(self.best_directory, options=best_options,
                                      item_handlers=handler())

  def save(self, state: Any) -> None:
    """Saves `state` under its step (overwriting nothing already written)."""
    step = int(jax.device_get(state.step))
    if step not in self.latest.all_steps():
      self.latest.save(step, args=ocp.args.PyTreeSave(state))
      self.latest.wait_until_finished()

  def save_best(self, state: Any, eval_bpd: float) -> None:
    """Keeps `state` in best/ if its eval bits/dim is the lowest so far."""
    step = int(jax.device_get(state.step))
    if step not in self.best.all_steps():
      self.best.save(step, args=ocp.args.PyTreeSave(state), metrics={'eval_bpd': eval_bpd})
      self.best.wait_until_finished()

  def latest_step(self) -> Optional[int]:
    """The newest saved step, or None."""
    return self.latest.latest_step()

  def restore(self, target: Any, which: str = 'latest',
              step: Optional[int] = None) -> Tuple[Any, Optional[int]]:
    """Restores the newest readable checkpoint into the structure/shardings of `target`.

    `step` (of `which`) restores that checkpoint only. Returns (state, step), or
    (target, None) when there is no checkpoint at all. Raises RuntimeError if
    checkpoints exist but none can be read, and ValueError if `step` is not saved.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    state, saved = self._restore_newest(which, step, lambda manager, s: _restore_args(abstract))
    return (target, None) if saved is None else (state, saved)

  def restore_fields(self, fields: Sequence[str], sharding: jax.sharding.Sharding,
                     which: str = 'latest', step: Optional[int] = None,
                     ) -> Tuple[Optional[Dict[str, Any]], Optional[int]]:
    """The top-level `fields` of the newest readable state (say params and EMA params), in the
    checkpoint's own shapes and dtypes placed with `sharding`; no other field is read.

    `step` (of `which`) restores that checkpoint only. Returns ({field: tree}, step), or
    (None, None) when there is no checkpoint; errors as `restore`'s.
    """
    def args(manager: ocp.CheckpointManager, step: int) -> ocp.args.PyTreeRestore:
      saved = manager.item_metadata(step).tree
      part = {f: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                              saved[f]) for f in fields}
      return _restore_args(part, partial=True)
    return self._restore_newest(which, step, args)

  def _restore_newest(self, which: str, step: Optional[int],
                      args: Callable[[ocp.CheckpointManager, int], ocp.args.PyTreeRestore],
                      ) -> Tuple[Any, Optional[int]]:
    """(tree, step) of the newest readable checkpoint of `which` ('best': its best one; `step`:
    that one only) restored with `args(manager, step)`, or (None, None) when there is none."""
    manager = self.latest if which == 'latest' else self.best
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise ValueError(f'No checkpoint of step {step} in {manager.directory}; saved steps: '
                         f'{sorted(steps)}.')
      steps = [step]
    elif which == 'best' and manager.best_step() is not None:
      steps = [manager.best_step()]
    errors = []
    for saved in steps:
      try:
        tree = manager.restore(saved, args=args(manager, saved))
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('Checkpoint at step %d in %s is unreadable (%s: %s); falling back to the'
                        ' previous one.', saved, manager.directory, type(e).__name__, e)
        errors.append(f'step {saved}: {type(e).__name__}: {e}')
        continue
      if errors:
        logging.warning('Resumed from step %d after skipping unreadable checkpoints.', saved)
      return tree, saved
    if errors:
      raise RuntimeError(f'No readable checkpoint in {manager.directory}:\n' + '\n'.join(errors))
    return None, None

  def close(self) -> None:
    """Waits for pending writes and releases the managers."""
    self.latest.close()
    self.best.close()
