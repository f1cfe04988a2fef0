"""The daemon's errors.

DriftwardenError          anything the daemon reports to a user instead of a traceback
├── ConfigError           a configuration file that cannot be used (carries the key path)
├── ProfileError          a reference file that cannot be read or fitted
├── SchemaOutdatedError   the database schema is older than this release
├── DatabaseUnavailable   the database cannot be reached
├── TopicError            Kafka topics that cannot be read as configured (partition counts)
└── InputError            a replay or dead-letter input that cannot be read
    └── ReplayRefused     a dead letter that cannot be produced again (it came from a file)
"""

from __future__ import annotations


class DriftwardenError(Exception):
    """An error the command line prints as one line and exits non-zero on."""


class ConfigError(DriftwardenError):
    """A configuration that cannot be used; ``path`` is the dotted key path, if any."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ProfileError(DriftwardenError):
    """A reference file that cannot be read or fitted."""


class SchemaOutdatedError(DriftwardenError):
    """The database schema is not at this release's revision."""


class InputError(DriftwardenError):
    """An input file that cannot be read."""


class ReplayRefused(InputError):
    """A dead letter that cannot be produced to Kafka again: it came from a file."""


class DatabaseUnavailable(DriftwardenError):
    """The database cannot be reached (down, refusing connections, or unknown)."""


class TopicError(DriftwardenError):
    """Kafka topics the daemon cannot read as configured: the labels topic partitioned unlike
    the predictions topic, or topic metadata the broker does not give."""
