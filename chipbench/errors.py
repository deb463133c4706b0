"""The error types a user is meant to read."""


class UserError(Exception):
    """Bad input from the user: the message is one line naming the problem and the fix."""


class RunError(UserError):
    """Bad input that no cell of the matrix can get past (e.g. a job asked of a chip this host
    does not have): it stops the run even from a matrix job, which otherwise records the
    failure of its one cell and lets the run go on."""
