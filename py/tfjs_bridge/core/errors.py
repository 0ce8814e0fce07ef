"""Errors that the CLI turns into one line on stderr and an exit code."""


class BridgeError(Exception):
    """A failure the user can act on. ``str(err)`` is the whole message."""

    exit_code = 1


class UsageError(BridgeError):
    """The command was called wrongly (exit 2, like click's own usage errors)."""

    exit_code = 2


class NodeError(BridgeError):
    """A Node.js process failed; ``stderr`` keeps everything it printed."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        self.stderr = stderr


def last_line(text: str) -> str:
    """The last non-blank line of a tool's stderr: where tracebacks say what broke."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output on stderr"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors run to
    paragraphs), or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unexpected(exc: BaseException) -> str:
    """An exception nobody expected, on one line: `unexpected KeyError: 0`."""
    lines = str(exc).strip().splitlines()
    return f"unexpected {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
