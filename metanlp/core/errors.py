"""Exception types that mean "the user's input is wrong" (the CLI prints them as one line, without a traceback)."""

from __future__ import annotations

from metanlp.core.config import ConfigError

__all__ = ["USER_ERRORS", "ConfigError", "HubError"]


class HubError(RuntimeError):
    """A push or pull failed: unreachable hub, bad token, missing repo or revision, conflicting content."""


#: Caught by the CLI and reported as ``metanlp: error: <message>`` with exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, HubError, FileNotFoundError, FileExistsError, ValueError)
