"""The one exception type the CLI turns into a single clear error line."""


class VbgmError(Exception):
    """A user-facing failure: bad input, bad request, unusable file. The message names the file."""
