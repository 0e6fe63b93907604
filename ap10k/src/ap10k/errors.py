"""The one exception type the CLI turns into a single clear error line."""


class AP10KError(Exception):
    """A user-facing failure: malformed file, bad argument. The message names the file."""
