"""The one exception type for a user's mistake: it names the field (or file) at fault and the fix.

Entry points catch it, print `error: <field>: <problem>. <fix>` on one line, exit non-zero, and
leave nothing half-written. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "RunHeld", "require"]


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
