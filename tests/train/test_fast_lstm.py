"""TwoThreadBiLSTM: same outputs and gradients as nn.LSTM (batch first, fed time-major), with
and without autograd."""

from __future__ import annotations

import pytest
import torch

from minidet.train.fast_lstm import TwoThreadBiLSTM


def _reference(lstm, x, weights):
    _, (h, _) = lstm(x)
    (h * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in lstm.named_parameters()}
    x_grad = None if x.grad is None else x.grad.clone()
    lstm.zero_grad()
    x.grad = None
    return h.detach(), grads, x_grad


@pytest.mark.parametrize("input_grad", [False, True])
def test_matches_nn_lstm_outputs_and_gradients(input_grad):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True).double()
    x = torch.randn(4, 9, 6, dtype=torch.float64, requires_grad=input_grad)
    weights = torch.randn(2, 4, 5, dtype=torch.float64)
    h_ref, grads_ref, x_grad_ref = _reference(lstm, x, weights)
    with TwoThreadBiLSTM(lstm) as bilstm:
        x_tm = x.transpose(0, 1)  # time-major
        h = bilstm(x_tm)
        (h * weights).sum().backward()
        with torch.no_grad():
            h_eval = bilstm(x_tm)
            # in a worker thread, where grad mode is not the caller's: no graph either
            h_parts = [bilstm._pool.submit(bilstm._run, d, x_tm, bilstm.params()[4 * d:4 * d + 4],
                                           False).result() for d in (0, 1)]
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_eval, h_ref, rtol=1e-12, atol=1e-12)
    assert not h_eval.requires_grad and not any(h.requires_grad for h in h_parts)
    for name, p in lstm.named_parameters():
        torch.testing.assert_close(p.grad, grads_ref[name], rtol=1e-10, atol=1e-12)
    if input_grad:
        torch.testing.assert_close(x.grad, x_grad_ref, rtol=1e-10, atol=1e-12)


def test_frozen_parameters_get_no_gradient():
    lstm = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    lstm.weight_ih_l0_reverse.requires_grad_(False)
    with TwoThreadBiLSTM(lstm) as bilstm:
        bilstm(torch.randn(5, 2, 3)).sum().backward()
    assert lstm.weight_ih_l0_reverse.grad is None
    assert lstm.weight_ih_l0.grad is not None and lstm.weight_hh_l0_reverse.grad is not None


@pytest.mark.parametrize("kwargs", [dict(bidirectional=False), dict(num_layers=2, bidirectional=True),
                                    dict(bidirectional=True, bias=False)])
def test_other_lstms_are_refused(kwargs):
    with pytest.raises(ValueError, match="bidirectional"):
        TwoThreadBiLSTM(torch.nn.LSTM(3, 4, **kwargs))
