"""Window-size rules shared by every stage that slides a window (one definition each).

miniML's rules, taken from its ``EventDetection`` (miniml/core/event.py):

* the default stride is ``round(window_size / 30)`` samples of the recording (Python's
  ``round``, i.e. banker's rounding: 15 -> 0 is lifted to 1, 45 -> 2, 75 -> 2);
* a network whose input is :data:`RESAMPLE_INPUT` (600) samples scores any window size, the
  trace being resampled by ``600 / window_size`` (``resample_to_600``).
"""

from __future__ import annotations

#: network input length of miniML's models; such a model may be resampled to any window
RESAMPLE_INPUT = 600

#: smallest window size (samples) the detector accepts: below it the default stride
#: ``round(window_size / 30)`` would be zero and the event measurements have no room
MIN_WINDOW_SIZE = 30


def default_stride(window_size: int) -> int:
    """miniML's default step between windows, ``round(window_size / 30)`` samples (>= 1)."""
    return max(1, round(int(window_size) / 30))


def may_resample(input_size: int, resample_flag: bool) -> bool:
    """Whether a model with this network input and file flag may score other window sizes.

    Every network with miniML's 600-sample input may (miniML resamples any ``win_size`` for
    it, and transfer learning always resamples); another input only when the file says so.
    """
    return bool(resample_flag) or int(input_size) == RESAMPLE_INPUT
