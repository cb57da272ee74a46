"""The one exception type zoolite raises for problems the user can fix."""


class ZooliteError(Exception):
    """Bad input or environment: printed by the CLI as one line, without a traceback.

    The message names the file or option at fault and says what to do about it.
    """
