"""Excitation back-propagation (Zhang et al. 2016) as a custom autograd rule on every ``nn.Conv2d``.

Inside ``with excitation_rule(module):`` each ``nn.Conv2d`` under ``module`` computes its
ordinary output, but its backward pass distributes the incoming top-down signal P(o)
to its inputs by the excitation rule instead of the gradient::

    P(a) = a+ * conv_transpose(P(o) / Z, w+),   Z = conv(a+, w+) + eps

with ``a+`` the positive part of the input (the usual trick for the first layer and for
the linear, possibly negative, outputs of a projection conv), ``w+`` the positive part
of the weights and the bias ignored. Element-wise layers (ReLU6, residual adds, padding,
pooling) keep their ordinary gradients. The rule is linear in P(o), so a batch of
independent signals can be pushed through one recorded forward graph with
``torch.autograd.grad(..., is_grads_batched=True)`` (the rule supports ``vmap``).

Why hook ``nn.Conv2d`` modules instead of re-implementing the network: the same forward
graph then serves both the features and the top-down pass, and a backbone that called
``F.conv2d`` directly would be caught by the test comparing the rule with the gradient.

Example::

    x.requires_grad_(True)
    with excitation_rule(backbone.stages):
        fmap = backbone.run_stages(x)
    (p,) = torch.autograd.grad(fmap, x, signal)  # signal: P at fmap; p: P at x
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Added to Z so that outputs nobody excites divide safely (their P(o) is zero anyway).
DEFAULT_EPS = 1e-6


class _ExcitationConv2d(torch.autograd.Function):
    """conv2d forward; excitation backward. Weight and bias get no gradient (inference only)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups, eps):  # type: ignore[override]
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, _bias, stride, padding, dilation, groups, eps = inputs
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, eps)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, eps = ctx.conf
        dtype = grad_out.dtype
        # a+, w+ and 1/Z depend on the forward only: computed once and reused when several
        # signals are pushed through one retained graph (one backward per peak rank).
        cache = getattr(ctx, "cache", None)
        if cache is None or cache[0].dtype != dtype:
            a_pos = x.clamp(min=0).to(dtype)
            w_pos = weight.clamp(min=0).to(dtype)
            inv_z = 1.0 / (F.conv2d(a_pos, w_pos, None, stride, padding, dilation, groups) + eps)
            cache = ctx.cache = (a_pos, w_pos, inv_z)
        a_pos, w_pos, inv_z = cache
        out_hw = grad_out.shape[-2:]
        output_padding = tuple(
            x.shape[-2 + i]
            - ((out_hw[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[-2 + i] - 1) + 1)
            for i in range(2)
        )
        back = F.conv_transpose2d(
            grad_out * inv_z, w_pos, None, stride, padding, output_padding, groups, dilation
        )
        return (a_pos * back).to(x.dtype), None, None, None, None, None, None, None


def excitation_conv2d(conv: nn.Conv2d, x: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """``conv(x)`` whose backward pass follows the excitation rule."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(
            f"excitation rule needs numeric zero padding, got {conv.padding!r}/{conv.padding_mode}"
        )
    return _ExcitationConv2d.apply(
        x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, eps
    )


# Which convolutions follow the rule is per thread: several analysis threads may run one shared
# backbone at once (docs/INGEST.md), each inside its own ``excitation_rule``, while a search
# thread runs plain forwards of the same model. The instance ``forward`` is installed while
# any thread needs it (counted under ``_LOCK``) and looks up the calling thread's setting.
_LOCK = threading.Lock()
_USERS: dict[int, int] = {}  # id(conv) -> excitation_rule blocks (any thread) that hold it
_THREAD = threading.local()  # .eps: dict[id(conv), eps] of this thread's open blocks


def _forward_for(conv: nn.Conv2d):
    def forward(x: torch.Tensor) -> torch.Tensor:
        eps = getattr(_THREAD, "eps", {}).get(id(conv))
        if eps is None:  # another thread's rule: this thread runs the plain convolution
            return type(conv).forward(conv, x)
        return excitation_conv2d(conv, x, eps)

    return forward


@contextmanager
def excitation_rule(module: nn.Module, eps: float = DEFAULT_EPS) -> Iterator[int]:
    """Make every ``nn.Conv2d`` under ``module`` use the excitation rule for forwards run inside.

    Yields how many convolutions were switched (never 0: a module without any raises,
    since the pass would silently be a plain gradient). The graph recorded inside keeps
    the rule after the block exits, so back-propagate whenever convenient. Thread-safe:
    the rule applies to the forwards of the calling thread only.
    """
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"no nn.Conv2d under {type(module).__name__}: the excitation rule would never run")
    mine = _THREAD.__dict__.setdefault("eps", {})
    before = {id(c): mine.get(id(c)) for c in convs}
    with _LOCK:
        for conv in convs:
            if _USERS.get(id(conv), 0) == 0:
                conv.forward = _forward_for(conv)  # instance attribute shadows the class method
            _USERS[id(conv)] = _USERS.get(id(conv), 0) + 1
    mine.update({id(c): eps for c in convs})
    try:
        yield len(convs)
    finally:
        for key, value in before.items():
            if value is None:
                mine.pop(key, None)
            else:
                mine[key] = value
        with _LOCK:
            for conv in convs:
                left = _USERS.get(id(conv), 1) - 1
                if left <= 0:
                    _USERS.pop(id(conv), None)
                    conv.__dict__.pop("forward", None)
                else:
                    _USERS[id(conv)] = left
