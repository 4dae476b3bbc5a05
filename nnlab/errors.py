"""Errors a user can act on.

Anything raised as an :class:`NnlabError` is printed by :func:`nnlab.cli.run`
as one line (``error: <what and where>``) with a non-zero exit, never as a
traceback. Raise them with the file, key or row that is wrong in the message.
"""


class NnlabError(Exception):
    """A problem with the user's input that they can fix."""


class ParamError(NnlabError):
    """A value in params.yaml is missing, mistyped or out of range."""


class DataError(NnlabError):
    """An input file is missing, corrupt or not in the expected format."""


class OutputError(NnlabError):
    """An output cannot be written: no permission, a full disk, a file size limit."""
