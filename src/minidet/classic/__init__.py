"""Classic event detectors for comparison with the deep-learning detector.

:mod:`.template` (Clements & Bekkers 1997 template matching) is usable on its own.
"""

from __future__ import annotations

from .template import clements_bekkers, find_events, template_from_kinetics

__all__ = ["clements_bekkers", "find_events", "template_from_kinetics"]
