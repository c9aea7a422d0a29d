"""Validation of a run's config before any work starts, and of a workdir against it.

A config must have exactly the keys of dfflows' reference config (`dfflows/default_config.py`,
in the package, so a config file anywhere on disk is checked against the same tree), values
of the reference's types, and values the code accepts.
"""
import difflib
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import ml_collections

from dfflows import default_config
from dfflows.data.catalog import DATASETS
from dfflows.diffusion.samplers import SAMPLERS
from dfflows.diffusion.schedules import SCHEDULES
from dfflows.diffusion.timesteps import T_SAMPLINGS
from dfflows.flows.couplings import MASKS
from dfflows.flows.multiscale import CONV1X1S, COUPLINGS
from dfflows.metrics.fid import BLOCK_DIMS, FID_FEATURES, resolve_features
from dfflows.models.build import MODEL_KINDS
from dfflows.models.diffflow import OBJECTIVES, PRIORS, UNET_LOSSES
from dfflows.nets.conv import CONV_IMPLS
from dfflows.nets.unet import COMPUTE_DTYPES
from dfflows.training.train_state import FLOW_SCHEDULES, LR_SCHEDULES

# Allowed values of each option, from the module that uses it (one source of truth).
CHOICES = {
    'data.name': DATASETS,
    'model.kind': MODEL_KINDS,
    'model.objective': OBJECTIVES,
    'model.unet_loss': UNET_LOSSES,
    'model.conv_impl': CONV_IMPLS,
    'model.t_sampling': T_SAMPLINGS,
    'model.prior': PRIORS,
    'unet.dtype': COMPUTE_DTYPES,
    'flow.coupling': COUPLINGS,
    'flow.mask': MASKS,
    'flow.conv1x1': CONV1X1S,
    'diffusion.schedule': SCHEDULES,
    'diffusion.sampler': SAMPLERS,
    'optim.schedule': LR_SCHEDULES,
    'optim.flow.schedule': FLOW_SCHEDULES,
    'eval.fid_features': FID_FEATURES,
    'eval.inception_dim': BLOCK_DIMS,
}
# Sections and keys whose values may change between a run and its resumption (the
# keys change how the model is computed, not what it is).
RESUMABLE_SECTIONS = ('train', 'eval', 'distributed')
RESUMABLE_KEYS = ('model.conv_impl', 'unet.remat', 'model.t_sampling',
                  'model.gaussian_control_variate')
# How to sample: an evaluation may set these keys (and config.eval.*) otherwise than its run.
SAMPLER_KEYS = ('diffusion.sample_steps', 'diffusion.sampler', 'diffusion.ddim_eta',
                'model.temperature')
# Sections and keys that only shape training (or how params were initialised): an evaluation
# ignores them.
TRAINING_ONLY = ('train', 'optim', 'distributed', 'model.warm_start',
                 'model.warm_start_step') + RESUMABLE_KEYS
CONFIG_FILE = 'config.json'
# Keys added to the config after runs were saved without them, with the value that gives how
# those runs were trained: a config.json that lacks one loads (and resumes) with it.
ADDED_KEYS = {'model.gaussian_control_variate': False, 'eval.bound_draws': 1,
              'eval.bound_control_variate': False}


def _get(config: ml_collections.ConfigDict, dotted: str):
  """config['a.b'] for a dotted key."""
  for part in dotted.split('.'):
    config = config[part]
  return config


def _flat_keys(tree: dict, prefix: str = '') -> List[str]:
  """Dotted names of the leaves of a nested dict."""
  keys = []
  for key, value in tree.items():
    keys += _flat_keys(value, f'{prefix}{key}.') if isinstance(value, dict) else [prefix + key]
  return keys


def _closest(dotted: str, keys: List[str]) -> str:
  """The key of `keys` closest to `dotted` ('(none)' if `keys` is empty)."""
  return (difflib.get_close_matches(dotted, keys, n=1, cutoff=0.0) or ['(none)'])[0]


def _reference() -> ml_collections.ConfigDict:
  """dfflows' reference config: the key tree and value types every config has."""
  return default_config.get_config()


def unknown_key(dotted: str) -> Optional[str]:
  """A message naming `dotted` and the closest known key if it is not a dfflows config key."""
  keys = _flat_keys(_reference().to_dict())
  if dotted in keys:
    return None
  return (f'config.{dotted} is not a dfflows config key; the closest known key is '
          f'config.{_closest(dotted, keys)}.')


def _check_type(dotted: str, value, reference) -> None:
  """Raises ValueError unless `value` has the reference value's type (an int may be a float)."""
  if (type(value) is type(reference) or isinstance(reference, float) and type(value) is int
      or isinstance(reference, (tuple, list)) and isinstance(value, (tuple, list))):
    return
  raise ValueError(f'config.{dotted}={value!r} has type {type(value).__name__}; dfflows expects '
                   f'{type(reference).__name__} (default {reference!r}).')


def check_keys(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first key that `config` has and the reference config lacks,
  or the reverse, or a value whose type is not the reference value's."""
  reference = _reference()
  reference_keys, keys = _flat_keys(reference.to_dict()), _flat_keys(config.to_dict())
  for dotted in keys:
    if dotted not in reference_keys:
      raise ValueError(unknown_key(dotted))
  for dotted in reference_keys:
    if dotted not in keys:
      raise ValueError(f'config.{dotted} is missing (a config has every key of '
                       f'dfflows/default_config.py); the closest key it has is '
                       f'config.{_closest(dotted, keys)}.')
    _check_type(dotted, _get(config, dotted), _get(reference, dotted))


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError naming the first inconsistent or unknown setting."""
  check_values(config)
  for name in ('train.batch_size', 'eval.batch_size'):
    batch = _get(config, name)
    if batch <= 0 or batch % num_devices:
      raise ValueError(f'config.{name}={batch} must be a positive multiple of the device count '
                       f'({num_devices}).')


def check_values(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first key that is missing or unknown (`check_keys`) or the
  first setting with a value the code does not accept."""
  check_keys(config)
  for key, choices in CHOICES.items():
    value = _get(config, key)
    if value not in choices:
      raise ValueError(f'config.{key}={value!r} is not one of {choices}.')
  resolve_features(config.eval.fid_features, config.data.channels)  # RGB with 'classifier'.
  if config.model.warm_start_step and not config.model.warm_start:
    raise ValueError(f'config.model.warm_start_step={config.model.warm_start_step} names a '
                     'checkpoint of config.model.warm_start, which is empty: set it to the '
                     "flow-only run's workdir.")
  if config.model.warm_start and config.model.kind != 'diffflow':
    raise ValueError(f'config.model.warm_start is for model.kind=diffflow, got '
                     f'{config.model.kind!r}.')
  flow = config.optim.flow
  if flow.lr_scale < 0 or flow.warmup_steps < -1 or config.optim.warmup_steps < 0:
    raise ValueError(f'config.optim.flow.lr_scale={flow.lr_scale} must be >= 0, '
                     f'config.optim.warmup_steps={config.optim.warmup_steps} >= 0 and '
                     f'config.optim.flow.warmup_steps={flow.warmup_steps} >= -1 (-1 = the same).')
  if config.model.kind == 'flow' and flow.lr_scale == 0:
    raise ValueError('config.optim.flow.lr_scale=0 freezes the flow, which is all a '
                     "model.kind='flow' run trains.")
  if not 0 < config.data.validation_percent < 100:
    raise ValueError(f'config.data.validation_percent={config.data.validation_percent} must be '
                     'in 1..99.')
  size = config.data.image_size
  factor = 2**config.flow.num_levels if config.model.kind != 'ddpm' else 1
  if config.model.kind != 'ddpm' and size % factor:
    raise ValueError(f'config.data.image_size={size} must be divisible by 2**flow.num_levels='
                     f'{factor}.')
  for name in ('train.num_steps', 'train.log_every', 'train.checkpoint_every',
               'train.eval_every', 'train.sample_every', 'train.steps_per_call',
               'eval.bound_draws'):
    if _get(config, name) <= 0:
      raise ValueError(f'config.{name} must be positive, got {_get(config, name)}.')


def _model_sections(config: ml_collections.ConfigDict) -> dict:
  """The parts of `config` that define the model and data (must match to resume)."""
  d = json.loads(config.to_json())
  return {k: v for k, v in d.items() if k not in RESUMABLE_SECTIONS}


def differences(saved: dict, now: dict, free: Tuple[str, ...] = (), label: str = 'workdir',
                prefix: str = '') -> Iterable[str]:
  """'key: saved (label) vs now (now)' for each dotted key, other than those in `free`,
  whose value differs between a saved config (as a nested dict, from `label`) and this one."""
  for key in sorted(set(saved) | set(now)):
    va, vb = saved.get(key), now.get(key)
    if prefix + key in free:
      continue
    if isinstance(va, dict) and isinstance(vb, dict):
      yield from differences(va, vb, free, label, f'{prefix}{key}.')
    elif va != vb:
      yield f'{prefix}{key}: {va!r} ({label}) vs {vb!r} (now)'


def _check_same_keys(saved: dict, now: dict, workdir: str) -> None:
  """Raises ValueError if the saved config's keys differ from this dfflows' (an older run)."""
  saved_keys, keys = set(_flat_keys(saved)), set(_flat_keys(now))
  if saved_keys != keys:
    missing, unknown = sorted(keys - saved_keys), sorted(saved_keys - keys)
    raise ValueError(
        f'Workdir {workdir}: its {CONFIG_FILE} was written by an older dfflows (keys missing: '
        f'{", ".join(missing) or "none"}; unknown: {", ".join(unknown) or "none"}); it cannot '
        'be resumed by this version, use a new workdir.')


def load_saved_config(workdir: str) -> dict:
  """The config a run saved in `workdir` (its config.json), as a nested dict, with each key of
  ADDED_KEYS that it lacks set to the value that run was trained with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{workdir!r} holds no {CONFIG_FILE}; expected the workdir of a run '
                            'trained with dfflows.main.')
  with open(path) as f:
    saved = json.load(f)
  for dotted, value in ADDED_KEYS.items():
    *sections, key = dotted.split('.')
    node = saved
    for section in sections:
      node = node.get(section)
      if not isinstance(node, dict):
        break  # No such section: _check_same_keys names what is missing.
    else:
      node.setdefault(key, value)
  return saved


def _model_diffs(config: ml_collections.ConfigDict, workdir: str,
                 free: Tuple[str, ...]) -> List[str]:
  """How `config`'s model and data differ from the run saved in `workdir` (keys in `free`
  aside); raises ValueError if its config.json has other keys (an older dfflows)."""
  saved = load_saved_config(workdir)
  _check_same_keys(saved, json.loads(config.to_json()), workdir)
  return list(differences({k: v for k, v in saved.items() if k not in RESUMABLE_SECTIONS},
                          _model_sections(config), free))


def check_same_model(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError unless `config` describes the model of the run in `workdir` (its
  eval, sampler and training settings may differ: config.eval.*, SAMPLER_KEYS, TRAINING_ONLY)."""
  diffs = _model_diffs(config, workdir, TRAINING_ONLY + SAMPLER_KEYS)
  if diffs:
    raise ValueError(f'The config does not describe the run in {workdir}; leave --config out '
                     "(the run's config.json is the default) or pass the model's settings it "
                     'was trained with. Differences:\n  ' + '\n  '.join(diffs))


def _is_eval_setting(dotted: str) -> bool:
  """Whether an evaluation may set `dotted` otherwise than its run (eval.*, SAMPLER_KEYS)."""
  return dotted.startswith('eval.') or dotted in SAMPLER_KEYS


def _is_training_only(dotted: str) -> bool:
  """Whether `dotted` only shapes training (TRAINING_ONLY, a key or a section)."""
  return any(dotted == k or dotted.startswith(k + '.') for k in TRAINING_ONLY)


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  """config['a.b'] = value for a dotted key."""
  *parents, last = dotted.split('.')
  for part in parents:
    config = config[part]
  config[last] = value


def evaluation_config(workdir: str, given: Optional[ml_collections.ConfigDict],
                      overrides: Dict[str, Any]) -> ml_collections.ConfigDict:
  """The config.json of the run in `workdir` with the eval and sampler settings of `given`
  (a --config, if any) and then of `overrides` (--config.KEY flags, by dotted key).

  Training-only keys (TRAINING_ONLY) of either are ignored; a model or data setting that
  differs from the run's is a ValueError naming it.
  """
  config = ml_collections.ConfigDict(load_saved_config(workdir))
  if given is not None:
    check_same_model(given, workdir)
    config.eval = ml_collections.ConfigDict(given.eval.to_dict())
    for dotted in SAMPLER_KEYS:
      _set(config, dotted, _get(given, dotted))
  for dotted, value in overrides.items():
    if _is_eval_setting(dotted):
      _set(config, dotted, value)
    elif not _is_training_only(dotted) and json.loads(json.dumps(value)) != json.loads(
        json.dumps(_get(config, dotted))):
      raise ValueError(f'--config.{dotted}={value!r} differs from the run in {workdir} '
                       f'({_get(config, dotted)!r}); an evaluation sets only config.eval.* and '
                       f'{", ".join(SAMPLER_KEYS)}.')
  return config


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Saves the config in a new workdir; raises ValueError if it holds a different run or one
  whose config.json has other keys (written by an older dfflows)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    diffs = _model_diffs(config, workdir, RESUMABLE_KEYS)
    if diffs:
      raise ValueError(f'Workdir {workdir} holds a run of a different config; use another '
                       'workdir or the same settings. Differences:\n  ' + '\n  '.join(diffs))
  os.makedirs(workdir, exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(config.to_json(indent=2))
  os.replace(tmp, path)
