"""Classic event detectors, behind one interface, to compare with the deep-learning detector.

=================  ====================================================================
``template``       Clements & Bekkers (1997): sliding scaled-template fit, criterion
                   ``scale / SE`` (:mod:`.template`)
``deconvolution``  Pernia-Andrade et al. (2012): FFT deconvolution with the template,
                   threshold at k SD of a Gaussian fit to the all-points histogram
                   (:mod:`.deconvolution`)
``threshold``      amplitude threshold on the low-pass-filtered trace (:mod:`.threshold`)
=================  ====================================================================

>>> from minidet.classic import METHODS, detect_events
>>> sorted(METHODS)
['deconvolution', 'template', 'threshold']
>>> found = detect_events(recording, "template", {"threshold": 4.5})   # doctest: +SKIP
>>> found.positions, found.criterion                                     # doctest: +SKIP

Positions are the events' steepest rise (the deep-learning detector's convention), so the
same kinetics code measures them. Default kinetics are cerebellar granule-cell mEPSCs
(rise tau 0.15 ms, decay tau 1.2 ms); set ``rise_tau_s`` / ``decay_tau_s`` for other cells.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..errors import ParameterError
from ..recording import Recording
from .base import ClassicDetections
from .deconvolution import Deconvolution, DeconvolutionSettings, deconvolve
from .template import (
    TemplateMatching,
    TemplateSettings,
    clements_bekkers,
    find_events,
    peak_time_s,
    template_from_kinetics,
)
from .threshold import AmplitudeThreshold, ThresholdSettings

__all__ = [
    "METHODS",
    "ClassicDetections",
    "detect_events",
    "make_settings",
    "method_names",
    "TemplateMatching",
    "TemplateSettings",
    "Deconvolution",
    "DeconvolutionSettings",
    "AmplitudeThreshold",
    "ThresholdSettings",
    "clements_bekkers",
    "deconvolve",
    "find_events",
    "peak_time_s",
    "template_from_kinetics",
]

#: method name -> detector class (with ``Settings``, a frozen dataclass of defaults, and ``run``)
METHODS: dict[str, type] = {
    TemplateMatching.name: TemplateMatching,
    Deconvolution.name: Deconvolution,
    AmplitudeThreshold.name: AmplitudeThreshold,
}


def method_names() -> list[str]:
    return sorted(METHODS)


def _method(method: str) -> type:
    if method not in METHODS:
        raise ParameterError(f"unknown classic method {method!r}; choose one of {', '.join(method_names())}")
    return METHODS[method]


def make_settings(method: str, settings: Any = None, **overrides: Any):
    """The method's settings from ``None`` (defaults), a dict or a settings object, with
    ``overrides``; an unknown field is a ParameterError naming the allowed ones."""
    cls = _method(method).Settings
    if settings is None:
        values: dict[str, Any] = {}
    elif isinstance(settings, cls):
        values = dataclasses.asdict(settings)
    elif isinstance(settings, Mapping):
        values = dict(settings)
    else:
        raise ParameterError(f"settings for {method!r} must be a {cls.__name__}, a dict or None, got {settings!r}")
    values.update(overrides)
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown} for method {method!r}; allowed: {', '.join(allowed)}")
    return cls(**values)


def detect_events(recording: Recording, method: str = "template", settings: Any = None,
                  **overrides: Any) -> ClassicDetections:
    """Find events with a classic method.

    Parameters
    ----------
    recording
        The recording (samples in its unit, sampling rate in Hz).
    method
        ``"template"``, ``"deconvolution"`` or ``"threshold"`` (see :data:`METHODS`).
    settings
        The method's settings object, a dict of its fields, or ``None`` for defaults.
    **overrides
        Fields overriding ``settings``.

    Returns
    -------
    ClassicDetections
        ``positions`` (samples, steepest rise) and ``criterion`` (per event, the statistic
        used as its score).
    """
    if not isinstance(recording, Recording):
        raise ParameterError(f"recording must be a minidet Recording, got {type(recording).__name__}")
    recording.check_finite()
    cls = _method(method)
    return cls.run(recording, make_settings(method, settings, **overrides))
