"""Per-event measurements (:mod:`.kinetics`) and per-recording statistics (:mod:`.summary`)."""

from __future__ import annotations

from .kinetics import KINETICS_COLUMNS, MeasureSettings, event_windows, measure_events

__all__ = ["KINETICS_COLUMNS", "MeasureSettings", "event_windows", "measure_events"]
