"""The one error type a user is meant to read."""


class UserError(Exception):
    """Bad input from the user: the message is one line naming the problem and the fix."""
