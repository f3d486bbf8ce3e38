"""Exceptions that carry a one-line, user-facing message.

The CLI prints ``error: <message>`` for these and exits with :attr:`exit_code`; anything else is a
bug and keeps its traceback.
"""


class OffrlBenchError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, whatever the user typed into it (a wrapper spec with a newline, say).
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class UsageError(OffrlBenchError):
    """The user asked for something that does not exist or cannot work (exit code 2)."""

    exit_code = 2


class PluginError(OffrlBenchError):
    """An algorithm plugin broke the API contract (missing method, wrong action shape, NaN loss)."""


def one_of(accepted) -> str:
    """Format the accepted values for an error message: ``one of: a, b, c``."""
    accepted = sorted(accepted)
    return "one of: " + ", ".join(accepted) if accepted else "none are installed"
