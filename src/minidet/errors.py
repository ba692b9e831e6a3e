"""Exception types raised by minidet.

Every error a user can cause derives from :class:`MinidetError`; the command line turns
each into one line on stderr and exit code 2. The messages name the value that was wrong
and, where there is one, the allowed range.
"""

from __future__ import annotations


class MinidetError(Exception):
    """Base class of every error caused by bad input or settings."""


class RecordingNotFoundError(MinidetError, FileNotFoundError):
    """The recording (or any input file) does not exist."""


class UnknownFormatError(MinidetError):
    """No reader knows the file's format."""


class MissingDependencyError(MinidetError):
    """An optional package that a format or feature needs is not installed (the message names
    the ``pip install`` that adds it)."""


class CorruptFileError(MinidetError):
    """The file exists but is truncated, damaged or not what its extension claims."""


class ChannelError(MinidetError):
    """The requested channel (or NWB series / HDF5 dataset) does not exist."""


class SweepError(MinidetError):
    """The requested sweep does not exist or the sweep selection is malformed."""


class EmptyTraceError(MinidetError):
    """The trace holds no samples (or none are left after cutting)."""


class NaNTraceError(MinidetError):
    """The trace holds NaN or infinite samples; the message says where."""


class ParameterError(MinidetError, ValueError):
    """A setting is outside its allowed range or of the wrong kind."""


class ModelFileError(MinidetError):
    """A model file is missing, malformed, truncated or does not match the network."""


class UnknownModelError(MinidetError):
    """A model short name is not in the registry."""


class OutputError(MinidetError):
    """A result cannot be written (exists without --force, or the folder is not writable)."""


class DatasetError(MinidetError):
    """A training dataset file is malformed (wrong shapes, dtypes or scores) or cannot be built."""


class DatasetLockedError(DatasetError):
    """A training dataset is open in another scoring session (its lock file names which)."""
