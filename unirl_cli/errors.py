"""The one exception type for user mistakes.

The CLI catches `UnirlError` and prints its message as one line (what was wrong, what to do) with a
non-zero exit code; any other exception is a bug and keeps its traceback under `--debug`.
"""


class UnirlError(Exception):
    """A problem the user can fix: bad input, missing model, no network. The message is shown as is."""
