"""The one exception type for a user's mistake: it names the field (or file) at fault and the fix.

Entry points catch it, print `error: <field>: <problem>. <fix>` on one line, exit non-zero, and
leave nothing half-written. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

__all__ = ["UserError", "RunHeld", "require", "out_of_space"]

# A full disk and a full quota: the user's to fix (free space, or write elsewhere), not a bug.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class UserError(Exception):
    """A mistake in the user's config, data or results folder: the field at fault and the fix."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.field}: {self.problem}.{fix}"


class RunHeld(Exception):
    """A single run (not a sweep's job) whose lock another process holds: this command trained
    nothing and has no record to show. Entry points print it as one line and exit 1."""

    SKIPPED = "is being trained by another process; skipped here"  # what a sweep's job says

    @classmethod
    def of(cls, run_dir: object) -> RunHeld:
        return cls(
            f"{run_dir}: is being trained by another process; nothing was done here. "
            "Rerun this command once that process ends (the run then reads as done)"
        )


def require(ok: bool, field: str, problem: str, fix: str) -> None:
    """Raise `UserError(field, problem, fix)` unless `ok`: the one-line check of every schema."""
    if not ok:
        raise UserError(field, problem, fix)


def out_of_space(e: BaseException, folder: object = None) -> UserError | None:
    """`e` as one UserError when a full disk (or quota) is at its root, else None.

    Looks through `e`'s causes and contexts: torch.save reports a failed write as a RuntimeError
    whose context is the OSError. `folder` names where the write went (the run's folder); without
    it, the file the OSError names, if any."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in _NO_SPACE:
            where = folder if folder is not None else cause.filename
            return UserError(
                str(where) if where is not None else "results_dir",
                f"its disk is full ({cause.strerror or 'No space left on device'}); "
                "nothing half-written was kept",
                "free space there, or point results_dir (or data.cache_dir) at a disk with room; "
                "then rerun the same command: a run resumes from its last checkpoint",
            )
        cause = cause.__cause__ or cause.__context__
    return None
