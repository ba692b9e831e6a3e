"""minidet.train.optim.Adam against torch.optim.Adam: the same update, both paths."""

import pytest
import torch

from minidet.train.optim import Adam


def _params(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(7, 5, generator=gen).requires_grad_(),
            torch.randn(11, generator=gen).requires_grad_(),
            torch.randn(3, 4, 2, generator=gen).requires_grad_()]


def _run(make_opt, steps: int = 25) -> list[torch.Tensor]:
    params = _params(0)
    opt = make_opt(params)
    gen = torch.Generator().manual_seed(1)
    for k in range(steps):
        opt.zero_grad(set_to_none=True)
        # A loss whose gradients change sign and scale from step to step.
        loss = sum(((p - torch.randn(p.shape, generator=gen)) ** 2 * (1 + k % 3)).sum() for p in params)
        loss.backward()
        if k == 5:
            params[1].grad = None  # a parameter without a gradient is left alone
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("amsgrad", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_same_update_as_torch(amsgrad, fused):
    settings = dict(lr=3e-2, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad)
    ref = _run(lambda ps: torch.optim.Adam(ps, **settings))
    got = _run(lambda ps: Adam(ps, **settings, fused=fused))
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    # the run moved the parameters far from where they started
    assert max((a - b).abs().max() for a, b in zip(ref, [p.detach() for p in _params(0)])) > 0.3


def test_fused_kernel_used_on_cpu_and_fallback_when_it_refuses(monkeypatch):
    opt = Adam(_params(0), lr=1e-3, amsgrad=True)
    assert opt.fused is hasattr(torch, "_fused_adam_")
    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(torch, "_fused_adam_", refuse, raising=False)
    ref = _run(lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True), steps=4)
    got = _run(lambda ps: Adam(ps, lr=1e-3, amsgrad=True), steps=4)
    assert calls == [1]  # tried once, then the per-tensor path for good
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_bad_settings():
    with pytest.raises(ValueError):
        Adam([], lr=1e-3)
    with pytest.raises(ValueError):
        Adam(_params(0), lr=0.0)
    with pytest.raises(ValueError):
        Adam(_params(0), lr=1e-3, betas=(1.0, 0.999))


def test_no_dynamo_import():
    """The point of the class: making and stepping it does not import torch's compiler."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from minidet.train.optim import Adam\n"
            "p = torch.zeros(3, requires_grad=True)\n"
            "opt = Adam([p], lr=1e-3, amsgrad=True)\n"
            "(p - 1).pow(2).sum().backward(); opt.step(); opt.zero_grad()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
