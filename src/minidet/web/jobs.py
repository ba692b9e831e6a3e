"""The analysis app's background job: its state and progress, and the prediction's progress bar
routed to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import time
from typing import Any, Iterator

__all__ = ["AnalysisCancelled", "Job"]


class AnalysisCancelled(Exception):
    """Raised inside the analysis thread when the person cancels it."""

@dataclasses.dataclass
class Job:
    """The background analysis: what it is doing and how far it got."""

    state: str = "idle"  # idle | running | done | error | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    started: float = 0.0
    finished: float = 0.0
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)

    def report(self, done: int, total: int | None) -> None:
        self.done, self.total = int(done), int(total or 0)
        if self.cancel.is_set():
            raise AnalysisCancelled()

    def to_dict(self) -> dict[str, Any]:
        fraction = None
        if self.state == "done":
            fraction = 1.0
        elif self.total > 0:
            fraction = min(1.0, self.done / self.total)
        end = self.finished if self.state != "running" else time.monotonic()
        return {
            "state": self.state,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "fraction": fraction,
            "message": self.message,
            "elapsed_s": round(end - self.started, 2) if self.started else 0.0,
        }

_TQDM_LOCK = threading.Lock()

@contextlib.contextmanager
def _prediction_progress(job: Job) -> Iterator[None]:
    """Route the prediction's progress bar (tqdm) to ``job`` while the block runs.

    :func:`minidet.detection.predict.predict` reports its progress through ``tqdm.auto.tqdm``
    and takes no callback, so the bar class is replaced by a silent subclass for the
    duration of one analysis (the app runs one at a time). If the prediction stops using
    tqdm, the page shows the stage without a fraction; nothing else changes.
    """
    try:
        import tqdm.auto as tqdm_auto
    except ImportError:  # pragma: no cover - tqdm is a dependency
        yield
        return

    original = tqdm_auto.tqdm

    class ReportingBar(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            # the bar's name: "predict", or "auto threshold (inverted)" for the second pass
            desc = kwargs.get("desc") or (args[1] if len(args) > 1 else None)
            job.stage = "predicting" if desc in (None, "", "predict") else str(desc)
            job.report(self.n, self.total)

        def update(self, n: float | None = 1) -> Any:
            out = super().update(n)
            job.report(self.n, self.total)
            return out

        def refresh(self, *args: Any, **kwargs: Any) -> Any:
            out = super().refresh(*args, **kwargs)
            job.total = int(self.total or 0)
            return out

    with _TQDM_LOCK:
        tqdm_auto.tqdm = ReportingBar
        try:
            yield
        finally:
            tqdm_auto.tqdm = original
