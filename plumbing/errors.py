"""The one error type every command turns into exit code 2 (one line on stderr)."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2.

    The message names the cause precisely: the file (and line, or field) or the flag at fault.
    """
