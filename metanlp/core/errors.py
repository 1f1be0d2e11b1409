"""Exception types that mean "the user's input is wrong" (the CLI prints them as one line, without a traceback)."""

from __future__ import annotations

__all__ = ["USER_ERRORS", "ConfigError", "HubError"]


class ConfigError(ValueError):
    """A recipe (YAML file or ``--set`` override) is malformed; the message names the file and dotted key."""


class HubError(RuntimeError):
    """A push or pull failed: unreachable hub, bad token, missing repo or revision, conflicting content."""


#: Caught by the CLI and reported as ``metanlp: error: <message>`` with exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, HubError, FileNotFoundError, FileExistsError, ValueError)
