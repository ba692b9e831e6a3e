import numpy as np
import pytest

from minidet.classic.template import clements_bekkers, find_events, peak_time_s, template_from_kinetics
from minidet.errors import ParameterError


def _brute(x, e):
    m = e.size
    out = []
    for i in range(x.size - m + 1):
        d = x[i:i + m]
        A = np.column_stack([e, np.ones(m)])
        (s, o), *_ = np.linalg.lstsq(A, d, rcond=None)
        sse = np.sum((d - s * e - o) ** 2)
        out.append((s, o, s / np.sqrt(sse / (m - 1))))
    return np.array(out).T


def test_matches_brute_force_least_squares():
    rng = np.random.default_rng(0)
    e = template_from_kinetics(0.5e-3, 3e-3, 10_000, length=40, baseline=5)
    x = rng.normal(size=300) + 100.0
    x[100:140] -= 8 * e
    scale, offset, crit = clements_bekkers(x, e)
    s, o, c = _brute(x, e)
    n = x.size - e.size + 1
    np.testing.assert_allclose(scale[:n], s, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(offset[:n], o, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(crit[:n], c, rtol=1e-7, atol=1e-7)
    assert np.all(np.isnan(scale[n:]))
    assert np.argmin(crit[:n]) == 100
    assert scale[100] == pytest.approx(-8, abs=0.6)


def test_template_shape_and_peak():
    e = template_from_kinetics(0.15e-3, 1.2e-3, 50_000, baseline=10)
    assert e.max() == pytest.approx(1.0)
    assert np.all(e[:10] == 0)
    assert (np.argmax(e) - 10) / 50_000 == pytest.approx(peak_time_s(0.15e-3, 1.2e-3), abs=1 / 50_000)
    with pytest.raises(ParameterError, match="longer than rise"):
        template_from_kinetics(2e-3, 1e-3, 50_000)
    with pytest.raises(ParameterError):
        template_from_kinetics(-1e-3, 1e-3, 50_000)


def test_find_events_on_noise_with_events():
    rng = np.random.default_rng(1)
    fs = 20_000
    e = template_from_kinetics(0.3e-3, 2e-3, fs, baseline=4)
    x = rng.normal(size=fs)
    onsets = np.array([1000, 5000, 5200, 12000, 17000])
    for o in onsets:
        seg = e[4:]
        x[o:o + seg.size] -= 6 * seg
    _, _, crit = clements_bekkers(x, e)
    found = find_events(-crit, 4.0, min_distance=20) + 4
    assert len(found) == len(onsets)
    assert np.all(np.abs(found - onsets) <= 2)


def test_bad_inputs():
    e = template_from_kinetics(0.3e-3, 2e-3, 20_000)
    with pytest.raises(ParameterError, match="shorter than the template"):
        clements_bekkers(np.zeros(5), e)
    with pytest.raises(ParameterError, match="constant"):
        clements_bekkers(np.zeros(100), np.ones(10))
    with pytest.raises(ParameterError):
        find_events(np.zeros(10), 1.0, min_distance=0)
    assert find_events(np.full(10, np.nan), 1.0).size == 0
