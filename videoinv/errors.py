"""User-facing errors.

Every problem a user can cause or fix (bad input, bad options, a missing tool) is raised as a
:class:`VideoinvError` whose message is one line that names the problem and what to do. The CLI
prints it as ``videoinv: error: <message>`` and exits non-zero; nothing else is printed.
"""

from __future__ import annotations


class VideoinvError(Exception):
    """A problem the user can fix; ``str(err)`` is a single line."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class InputError(VideoinvError):
    """The input video (or another input file) is missing, unreadable or malformed."""


class OutputError(VideoinvError):
    """The output cannot be written (same as the input, exists already, bad encoder...)."""


class ChainError(VideoinvError):
    """A chain spec is malformed or names an unknown stage or option."""

    exit_code = 2
