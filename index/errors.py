"""Errors caused by what a person did, typed or configured, as opposed to bugs.

Adapters report a ``UserError`` as one line (the CLI on stderr with exit status 1) and let every other
exception keep its traceback, so a real bug is never dressed up as a user mistake.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: the message says what and, where it helps, how."""


class SetupError(UserError, RuntimeError):
    """Configuration and data that cannot work together (another model's vectors, a missing token).

    Also a ``RuntimeError``, which is what callers caught before this type existed.
    """


class ModelNotInstalled(UserError, FileNotFoundError):
    """``[embedding] model`` names a model that is neither a directory nor in the local cache."""


class SettingError(UserError, ValueError):
    """A setting that cannot work with the others; also a ``ValueError``, as raised before this type existed."""
