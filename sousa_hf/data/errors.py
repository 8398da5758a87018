"""The one error type the data layer raises for bad input."""


class SousaDataError(ValueError):
    """A SOUSA source, column, label or audio clip is not what the suite expects.

    The message names the bad value and how to fix it.
    """
