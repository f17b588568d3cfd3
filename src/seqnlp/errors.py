"""Errors that are the user's to fix (bad data, no data source, bad arguments): shown without a traceback."""

import os
from pathlib import Path


class UserError(Exception):
    """A problem with inputs or settings, not with seqnlp; the message says what to change."""


class DataError(UserError, ValueError):
    """Bad input data; the message names the file (and line, when there is one) and what was expected."""

    def __init__(self, path, message, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = Path(path), line


class SourceUnavailable(UserError, RuntimeError):
    """Neither the upstream source nor a mirror could provide the data; one line that says what to do, which
    depends on whether a mirror is set (SEQNLP_DATA_MIRROR, read by seqnlp.sources)."""

    def __init__(self, what, reason):
        mirror = os.environ.get("SEQNLP_DATA_MIRROR")
        advice = (f"SEQNLP_DATA_MIRROR is {mirror}: it must be a folder laid out like shared/data (its "
                  "PROVENANCE.md lists every file)" if mirror else
                  "without network access, point SEQNLP_DATA_MIRROR at a data mirror (e.g. "
                  "export SEQNLP_DATA_MIRROR=../shared/data)")
        super().__init__(f"cannot download {what}: {reason}; {advice}")


class Interrupted(UserError):
    """The user stopped a command (Ctrl-C); the message says what was kept."""

    exit_code = 130
