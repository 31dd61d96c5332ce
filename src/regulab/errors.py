"""The one exception type the command line turns into a one-line message."""


class RegulabError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""


class TrainingStopped(RegulabError):
    """Training stopped on the user's request (Ctrl-C, SIGTERM); finished epochs are saved in `run_dir`."""

    def __init__(self, message: str, run_dir=None):
        super().__init__(message)
        self.run_dir = run_dir


class DamagedFile(RegulabError):
    """A file regulab wrote no longer matches the checksum written with it (a failing disk, a bad
    copy, an edit): what happened, and `path`; the command line adds how to continue."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


def unknown_name(kind: str, name: str, known, where: str) -> RegulabError:
    """An error for a misspelt name that suggests the closest known one."""
    from difflib import get_close_matches

    near = get_close_matches(name, list(known), n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return RegulabError(f"unknown {kind} {name!r}; {hint}{where}")
