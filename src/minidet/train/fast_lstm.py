"""Training-only bidirectional LSTM that runs its two directions on two threads.

Transfer learning spends nearly all its time in the BiLSTM of :class:`MiniMLNet` (the frozen
convolution output is cached). ``nn.LSTM`` on a CPU runs each direction as one fused oneDNN
kernel, forward and backward, but the two directions one after the other, and the kernel gains
nothing from a second intra-op thread at batch 64 (measured). The two directions are independent
until their final states are summed, so :class:`TwoThreadBiLSTM` computes them at the same time,
one per thread, each with the same fused kernel (``nn.LSTM`` called with one direction's
weights), in the forward and in the backward pass.

The weights stay those of the bidirectional ``nn.LSTM``, so the trained network is a plain
:class:`~minidet.model.network.MiniMLNet`. Each direction's arithmetic is that of
``nn.LSTM``; results agree with it to float32 rounding (a test checks outputs and gradients)
and are deterministic: nothing is summed across the threads except, in a fixed order, the
input gradient.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["TwoThreadBiLSTM"]

_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


class TwoThreadBiLSTM:
    """Last hidden states of a one-layer bidirectional ``nn.LSTM``, one direction per thread.

    Parameters
    ----------
    lstm : nn.LSTM
        One layer, bidirectional, with biases (as in :class:`MiniMLNet`). Its parameters are
        used as they are and receive the gradients.

    Notes
    -----
    Inputs are time-major, (T, N, C), whatever ``lstm.batch_first`` says: the fused kernel
    works time-major, and a caller that has to transpose anyway saves a copy. Call :meth:`close` (or use ``with``) to stop the two worker threads. Each worker runs
    torch's intra-op work with the thread count in force when it starts; use one
    (``torch.set_num_threads(1)``) so that the two workers fill two cores.
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        if lstm.num_layers != 1 or not lstm.bidirectional or not lstm.bias or lstm.proj_size:
            raise ValueError("TwoThreadBiLSTM needs a one-layer, bidirectional nn.LSTM with "
                             "biases")
        self.lstm = lstm
        # One single-direction template per worker: functional_call swaps its parameters
        # while it runs, so a template must never be shared by the two threads.
        self._templates = [nn.LSTM(lstm.input_size, lstm.hidden_size, device="meta")
                           for _ in range(2)]
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="minidet-bilstm")

    def params(self) -> list[torch.Tensor]:
        sfx = ("", "_reverse")
        return [getattr(self.lstm, name + s) for s in sfx for name in _NAMES]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``h_n`` of the LSTM, shape (2, N, H), for a time-major input x, shape (T, N, C)."""
        if not torch.is_grad_enabled():
            params = self.params()
            grad_free = lambda d: self._run(d, x, params[4 * d:4 * d + 4], False)  # noqa: E731
            return torch.stack(list(self._pool.map(grad_free, (0, 1))))
        return _TwoThreadFn.apply(self, x, *self.params())

    def _run(self, d: int, x: torch.Tensor, params: list[torch.Tensor], grad: bool) -> torch.Tensor:
        # Grad mode is per thread: the worker's is set here, not inherited from the caller.
        with torch.set_grad_enabled(grad):
            xin = x.flip(0) if d else x
            _, (h, _) = functional_call(self._templates[d], dict(zip(_NAMES, params)), (xin,))
        return h[0]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> TwoThreadBiLSTM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _TwoThreadFn(torch.autograd.Function):
    """Each direction builds its own small autograd graph in its worker thread; the backward
    pass runs the two graphs' backward passes in the workers again."""

    @staticmethod
    def forward(ctx, runner: TwoThreadBiLSTM, x: torch.Tensor, *params: torch.Tensor):  # noqa: D102
        x_grad = ctx.needs_input_grad[1]

        def run(d: int):
            leaves = [p.detach().requires_grad_(ctx.needs_input_grad[2 + 4 * d + i])
                      for i, p in enumerate(params[4 * d:4 * d + 4])]
            xd = x.detach().requires_grad_(x_grad)
            return runner._run(d, xd, leaves, True), leaves, xd

        ctx.graphs = list(runner._pool.map(run, (0, 1)))
        ctx.runner = runner
        return torch.stack([h.detach() for h, _, _ in ctx.graphs])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        graphs, runner = ctx.graphs, ctx.runner
        del ctx.graphs

        def back(d: int):
            h, leaves, xd = graphs[d]
            inputs = [t for t in (*leaves, xd) if t.requires_grad]
            got = iter(torch.autograd.grad(h, inputs, grad[d]))
            return [next(got) if t.requires_grad else None for t in (*leaves, xd)]

        g0, g1 = runner._pool.map(back, (0, 1))
        grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = g0[4] + g1[4]
        return (None, grad_x, *g0[:4], *g1[:4])
