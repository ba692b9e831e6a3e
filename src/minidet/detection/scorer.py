"""Score raw windows with a miniML network, fast on a CPU.

:class:`WindowScorer` turns a batch of raw windows (in the polarity the network was trained
on) into event probabilities. It min-max scales every window on its own, as miniML does, and
then either runs the network as it is (``engine="plain"``: the reference float32 evaluation,
and what runs on a GPU) or an inference-only float32 rewrite of it (``engine="fast"``, the
default on a CPU):

- each BatchNorm is folded into the convolution before it (exact algebra, rounding aside);
- LeakyReLU runs in place; odd kernels use the convolution's own symmetric padding instead
  of a padded copy of the activations;
- activations stay channels-last from the first convolution to the LSTM (see
  :class:`_FastCpuNet`);
- by default (``backend="auto"``) that inference graph runs in ONNX Runtime
  (:mod:`.onnx_net`): its LSTM kernel is about 1.5x faster than torch's oneDNN LSTM at these
  sizes, and its blocked-channel convolutions a little faster than oneDNN's;
  ``backend="torch"`` (or a missing onnxruntime) runs it in torch (:class:`_FastCpuNet`).

Both engines are plain float32. Measured on 2 AVX2 cores (AMD EPYC, Zen 3), per window on
one thread: plain 0.60-0.65 ms; fast in torch 0.43-0.50 ms (the LSTM 0.28-0.34 ms of it, at
about 40-48 GFLOP/s); fast in ONNX Runtime 0.34-0.38 ms (its LSTM 0.20 ms). Tried and
dropped: bfloat16 autocast (ten times slower without native bf16), ``torch.compile`` and
TorchScript freezing (no faster, up to 30 s of compilation), int8 dynamic quantisation of
the LSTM (slower, and 0.05 off), oneDNN convolution with a fused LeakyReLU (no faster), a
hand-written LSTM recurrence (1.5x slower than oneDNN's), im2col matrix products for the
2nd-4th convolutions (2x slower than oneDNN's channels-last convolutions), and a time-major
conv stack (kernels ``(k, 1)`` over ``(1, C, L, n)`` images) that would spare the LSTM its
transposing copy (25 % slower).
A profile of the torch fast path on one thread: LSTM 63 %, convolutions 23 %, first
convolution and dense layers 4 %, pooling 4 %, LeakyReLU 2 %, gathering and scaling windows 2 %.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ParameterError
from .folding import fold_conv_bn

__all__ = ["BACKENDS", "ENGINES", "WindowScorer"]

ENGINES = ("fast", "plain")
#: who runs the fast engine on a CPU ("auto": onnxruntime when installed, else torch)
BACKENDS = ("auto", "onnxruntime", "torch")


class _FastCpuNet:
    """Inference-only float32 rewrite of :class:`~minidet.model.network.MiniMLNet`.

    Activations stay channels-last, ``(n, length, channels)``, from the first convolution to
    the LSTM: the first convolution (one input channel, where oneDNN is slow) is one matrix
    product over unfolded windows; the others are oneDNN channels-last convolutions; average
    pooling is a sum of strided slices (5-10x faster than ``avg_pool1d`` on channels-first
    data); the LSTM gets its ``(n, steps, features)`` input without a transposing copy.
    """

    def __init__(self, network: nn.Module) -> None:
        with torch.no_grad():
            self.blocks = []
            carry = 1.0  # the previous block's 1/pool, folded into this convolution
            for i, block in enumerate(network.blocks):
                weight, bias, pad_left, pad_right, pool, slope = fold_conv_bn(block)
                weight = weight * carry
                unfold = i == 0 and weight.shape[1] == 1
                if unfold:
                    w = weight[:, 0, :].t().contiguous()  # (kernel, out)
                else:
                    w = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
                self.blocks.append((w, bias, pad_left, pad_right, pool, slope, unfold))
                carry = 1.0 / pool
            # the last block's pooling (if any) would need its 1/pool before the LSTM
            self.final_scale = carry
            self.lstm = network.lstm
            self.dense_w = network.dense.weight.t().contiguous()
            self.dense_b = network.dense.bias.detach().clone()
            self.dense_slope = float(network.dense_act.negative_slope)
            self.out_w = network.out.weight.t().contiguous()
            self.out_b = network.out.bias.detach().clone()

    @staticmethod
    def _pool(h: torch.Tensor, p: int) -> torch.Tensor:
        """Sum (not mean: 1/p is folded into the next weights) of ``p`` neighbours."""
        usable = h.shape[1] // p * p
        out = h[:, 0:usable:p] + h[:, 1:usable:p]
        for j in range(2, p):
            out += h[:, j:usable:p]
        return out

    def __call__(self, scaled: torch.Tensor) -> torch.Tensor:
        n = scaled.shape[0]
        h = scaled
        for w, bias, pad_left, pad_right, pool, slope, unfold in self.blocks:
            if unfold:
                kernel = w.shape[0]
                cols = F.pad(h, (pad_left, pad_right)).unfold(1, kernel, 1)  # (n, L, kernel)
                h = torch.addmm(bias, cols.reshape(-1, kernel), w).view(n, -1, w.shape[1])
            else:
                x = h.permute(0, 2, 1).unsqueeze(2)  # (n, C, 1, L) view of channels-last memory
                if pad_left != pad_right:
                    x = F.pad(x, (pad_left, pad_right)).contiguous(memory_format=torch.channels_last)
                    y = F.conv2d(x, w, bias)
                else:
                    y = F.conv2d(x, w, bias, padding=(0, pad_left))
                h = y.squeeze(2).permute(0, 2, 1)
                if not h.is_contiguous():
                    h = h.contiguous()
            F.leaky_relu_(h, slope)
            if pool > 1:
                h = self._pool(h, pool)
        if self.final_scale != 1.0:
            h = h * self.final_scale
        _, (h_n, _) = self.lstm(h)
        z = torch.addmm(self.dense_b, h_n[0] + h_n[1], self.dense_w)
        F.leaky_relu_(z, self.dense_slope)
        return torch.sigmoid(torch.addmm(self.out_b, z, self.out_w)).squeeze(-1)


class WindowScorer:
    """Event probability of raw windows for one network on one device.

    Parameters
    ----------
    network : MiniMLNet
        The classifier (any device; it is not modified).
    device : torch.device
        Where to compute.
    engine : {"fast", "plain"}
        ``"fast"``: the inference-only CPU rewrite (falls back to ``"plain"`` off the CPU);
        ``"plain"``: the network's own forward pass, the float32 reference.
    minmax : bool
        Min-max scale each window first (miniML's models). False: the caller hands in windows
        already scaled (noise-scaled models, :func:`minidet.model.network.noise_scale`).
    backend : {"auto", "onnxruntime", "torch"}
        Fast engine only: who runs it. ``"auto"``: ONNX Runtime when it is installed (it is a
        dependency of minidet), else torch. The attribute of the same name says which one
        runs (``None`` for the plain engine).
    """

    def __init__(self, network: nn.Module, device: torch.device, engine: str = "fast",
                 backend: str = "auto", minmax: bool = True) -> None:
        if engine not in ENGINES:
            raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
        if backend not in BACKENDS:
            raise ParameterError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.device = torch.device(device)
        self.input_size = int(network.window_size)
        self.minmax = bool(minmax)
        if engine == "fast" and self.device.type == "cpu":
            cpu_net = network if next(network.parameters()).device.type == "cpu" else None
            if cpu_net is None:
                import copy

                cpu_net = copy.deepcopy(network).to("cpu")
            self._net = None
            self.engine = "fast"
            self._fast = self._onnx = None
            if backend != "torch":
                from . import onnx_net

                if onnx_net.available():
                    self._onnx = onnx_net.OnnxNet(cpu_net.eval(), minmax=self.minmax)
                elif backend == "onnxruntime":
                    raise ParameterError("backend='onnxruntime' needs the onnxruntime and onnx "
                                         "packages (pip install onnxruntime onnx)")
            if self._onnx is None:
                self._fast = _FastCpuNet(cpu_net.eval())
            self.backend = "onnxruntime" if self._onnx is not None else "torch"
        else:
            self._fast = self._onnx = None
            self._net = network.to(self.device).eval()
            self.engine = "plain"
            self.backend = None

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities, float32 shape (n,), of float32 windows of shape (n, input_size) (raw,
        or already scaled when ``minmax`` is False)."""
        if len(windows) == 0:
            return np.zeros(0, dtype=np.float32)
        if self._onnx is not None:
            return self._onnx(windows)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
            if self.device.type != "cpu":
                x = x.to(self.device)
            if self.minmax:
                lo, hi = torch.aminmax(x, dim=1, keepdim=True)
                span = hi - lo
                span = torch.where(span > 0, span, torch.ones_like(span))
                scaled = (x - lo).div_(span)
            else:
                scaled = x
            probs = self._fast(scaled) if self._fast is not None else self._net(scaled)
            return probs.float().cpu().numpy()
