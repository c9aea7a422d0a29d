"""Normalizing-flow layers (Glow layout with NSF couplings) and their distrax adapter."""
from dfflows.flows.actnorm import ActNorm
from dfflows.flows.bijector import FlowBijector
from dfflows.flows.conv1x1 import Conv1x1, Conv1x1LU
from dfflows.flows.couplings import AffineCoupling, SplineCoupling
from dfflows.flows.dequantize import Logit, uniform_dequantize
from dfflows.flows.multiscale import (FlowLevel, FlowStep, MultiScaleFlow, StepSettings,
                                      join_levels, split_levels)
from dfflows.flows.squeeze import squeeze, unsqueeze

__all__ = [
    'ActNorm', 'AffineCoupling', 'Conv1x1', 'Conv1x1LU', 'FlowBijector', 'FlowLevel',
    'FlowStep', 'Logit', 'MultiScaleFlow', 'SplineCoupling', 'StepSettings', 'join_levels',
    'split_levels', 'squeeze', 'uniform_dequantize', 'unsqueeze',
]
