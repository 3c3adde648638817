"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class IptbenchError(Exception):
    """A problem the user can fix (bad path, wrong layout, incompatible checkpoint...).

    The message must be a single line that says what is wrong and what to do about it.
    """

    exit_code = 1


class ImageReadError(IptbenchError):
    """An image file that cannot be decoded (corrupt, truncated, unsupported)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason
