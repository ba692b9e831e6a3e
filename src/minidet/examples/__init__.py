"""Small example recordings bundled with minidet (see README.md in this folder).

>>> from minidet import examples
>>> examples.path("public10")          # doctest: +SKIP
PosixPath('.../minidet/examples/public10.h5')
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError

__all__ = ["NAMES", "DEFAULT", "path"]

_HERE = Path(__file__).resolve().parent

#: short name -> (file name, one-line description)
NAMES: dict[str, tuple[str, str]] = {
    "public10": ("public10.h5", "10 s simulated voltage-clamp recording, 50 kHz, pA (miniML test data)"),
}
DEFAULT = "public10"


def path(name: str = DEFAULT) -> Path:
    """Return the path of the bundled example recording called ``name``.

    Raises :class:`minidet.errors.ParameterError` for an unknown name (the message lists
    the known ones).
    """
    entry = NAMES.get(name)
    if entry is None:
        raise ParameterError(f"unknown example {name!r}; bundled examples: {', '.join(sorted(NAMES))}")
    return _HERE / entry[0]
