"""The one exception type the CLI turns into a one-line message."""


class ToolError(Exception):
    """An expected failure: printed as one line on stderr, exit status 1.

    `hint` is the fix, e.g. the package to install; it is appended in
    parentheses so the whole message stays on one line.
    """

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
