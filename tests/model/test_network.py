import numpy as np
import pytest
import torch

from minidet.errors import ParameterError
from minidet.model.network import MiniMLNet, SamePadConv1d, minmax_scale


def test_minmax_scale_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 600)) * 5 + 3
    s = minmax_scale(x)
    assert s.shape == x.shape
    np.testing.assert_allclose(s.min(axis=1), 0.0)
    np.testing.assert_allclose(s.max(axis=1), 1.0)
    t = minmax_scale(torch.from_numpy(x))
    np.testing.assert_allclose(t.numpy(), s)


def test_minmax_scale_flat_window_is_zero_not_nan():
    x = np.full((2, 600), 4.0, dtype=np.float32)
    s = minmax_scale(x)
    assert s.dtype == np.float32
    assert np.all(s == 0)


def test_same_padding_matches_keras_for_even_and_odd_kernels():
    for k in (2, 3, 4, 9):
        conv = SamePadConv1d(1, 1, k)
        assert conv(torch.zeros(1, 1, 50)).shape[-1] == 50
        assert conv.pad_left == (k - 1) // 2


@pytest.mark.parametrize("window_size", [600, 100, 37])
def test_forward_shape_and_range(window_size):
    net = MiniMLNet(window_size=window_size).eval()
    with torch.no_grad():
        p = net(torch.rand(4, window_size))
    assert p.shape == (4,)
    assert torch.all((p > 0) & (p < 1))


def test_bad_hyperparameters_raise():
    with pytest.raises(ParameterError):
        MiniMLNet(window_size=5)
    with pytest.raises(ParameterError):
        MiniMLNet(dropout=1.5)
