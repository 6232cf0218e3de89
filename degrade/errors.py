"""The one exception users see for their own mistakes."""

from __future__ import annotations

__all__ = ["DegradeError"]


class DegradeError(ValueError):
    """A user error: bad option, impossible parameter, unreadable input.

    The message names what was wrong and what is allowed; the command line prints it as
    one line ``degrade: error: ...`` and exits with code 2.

    Examples
    --------
    >>> issubclass(DegradeError, ValueError)
    True
    """
