"""Adam (with miniML's AMSGrad variant) without ``torch.optim``'s start-up cost.

``torch.optim.Optimizer`` imports ``torch._dynamo`` the first time an optimizer is made or
stepped (its methods are wrapped to keep the compiler out), and that import takes 1.5-2.5 s:
a fifth of a 1000-window transfer learning on a 2-core CPU, for a compiler that training never
uses. :class:`Adam` runs the same update with the same state:

* where torch has its fused Adam kernel for the parameters' device and dtype (CPU and CUDA,
  floating point), one call of ``torch._fused_adam_`` per step, the kernel that
  ``torch.optim.Adam(fused=True)`` calls, with the same arguments;
* otherwise (or if that private operator is missing or refuses), the per-tensor arithmetic of
  ``torch.optim.Adam``'s single-tensor path.

A test holds both paths against ``torch.optim.Adam`` with and without AMSGrad.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

__all__ = ["Adam"]


class Adam:
    """Adam or AMSGrad (Kingma & Ba 2015; Reddi et al. 2018), no weight decay.

    Parameters
    ----------
    params : iterable of tensors
        The parameters to train (leaf tensors that receive ``.grad``).
    lr : float
        Learning rate.
    betas : (float, float)
        Decay rates of the first and second moment estimates.
    eps : float
        Added to the denominator, after the bias correction (as ``torch.optim.Adam``).
    amsgrad : bool
        Use the running maximum of the second moment (miniML trains with it).
    fused : bool
        True: the fused kernel where torch has one for the parameters, else (silently, the
        arithmetic is the same) the per-tensor path; False: always the per-tensor path.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, amsgrad: bool = False, fused: bool = True) -> None:
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("Adam needs at least one parameter")
        if not (lr > 0 and eps >= 0 and 0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"impossible Adam settings: lr {lr}, betas {betas}, eps {eps}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(betas[0]), float(betas[1]), float(eps)
        self.amsgrad = bool(amsgrad)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.max_exp_avg_sq = ([torch.zeros_like(p, memory_format=torch.preserve_format)
                                for p in self.params] if self.amsgrad else [])
        # Step counts as float32 tensors on the parameters' devices, as the fused kernel wants.
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.fused = bool(fused) and self._fused_supported()

    def _fused_supported(self) -> bool:
        if not hasattr(torch, "_fused_adam_"):
            return False
        devices = {p.device for p in self.params}
        return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
                and all(p.is_floating_point() and not p.is_complex() and p.dtype == self.params[0].dtype
                        for p in self.params))

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        index = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not index:
            return
        if self.fused:
            try:
                self._fused_step(index)
                return
            except (RuntimeError, TypeError, NotImplementedError):
                # A torch whose private kernel differs: the per-tensor path does the same.
                self.fused = False
        self._plain_step(index)

    def _fused_step(self, index: list[int]) -> None:
        pick = lambda seq: [seq[i] for i in index]  # noqa: E731
        steps = pick(self.steps)
        grads = [self.params[i].grad for i in index]
        # Validate before anything changes, so that a refusal leaves the state untouched.
        if any(g.is_sparse or g.dtype != self.params[index[0]].dtype for g in grads):
            raise TypeError("the fused Adam kernel needs dense gradients of the parameters' dtype")
        for s in steps:
            s.add_(1)
        try:
            torch._fused_adam_(pick(self.params), grads, pick(self.exp_avg), pick(self.exp_avg_sq),
                               pick(self.max_exp_avg_sq) if self.amsgrad else [], steps,
                               amsgrad=self.amsgrad, lr=self.lr, beta1=self.beta1, beta2=self.beta2,
                               weight_decay=0.0, eps=self.eps, maximize=False,
                               grad_scale=None, found_inf=None)
        except BaseException:
            for s in steps:
                s.sub_(1)
            raise

    def _plain_step(self, index: list[int]) -> None:
        for i in index:
            param, grad = self.params[i], self.params[i].grad
            exp_avg, exp_avg_sq = self.exp_avg[i], self.exp_avg_sq[i]
            self.steps[i].add_(1)
            step = float(self.steps[i])
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            step_size = self.lr / (1 - self.beta1 ** step)
            correction2_sqrt = math.sqrt(1 - self.beta2 ** step)
            if self.amsgrad:
                torch.maximum(self.max_exp_avg_sq[i], exp_avg_sq, out=self.max_exp_avg_sq[i])
                second = self.max_exp_avg_sq[i]
            else:
                second = exp_avg_sq
            denom = (second.sqrt() / correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)
