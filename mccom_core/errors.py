"""The one exception type a user can cause.

Everything a user can get wrong (an unknown model spec, a missing file, an empty context,
a bad threshold, malformed data) raises :class:`MccomError` with a message that says what
to do. Internal bugs still raise the usual Python exceptions.
"""


class MccomError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""
