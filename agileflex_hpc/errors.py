"""Exception hierarchy. Messages name the field or item, the reason and the valid range."""

__all__ = [
    "AgileflexError",
    "ConfigError",
    "InputDataError",
    "NetworkError",
    "ConvergenceError",
    "SolverError",
    "ResultsError",
    "StaleError",
]


class AgileflexError(Exception):
    """Base class of every error raised by agileflex_hpc."""


class ConfigError(AgileflexError, ValueError):
    """A job config is malformed: wrong key, type or value."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = f"invalid config {source}" if source else "invalid config"
        super().__init__(head + ":\n  - " + "\n  - ".join(self.problems))


class InputDataError(AgileflexError, ValueError):
    """An input table or profile is missing, malformed, NaN or negative."""


class NetworkError(AgileflexError, ValueError):
    """An OpenDSS network cannot be loaded or its topology is unusable."""


class ConvergenceError(AgileflexError, RuntimeError):
    """Too many power flows did not converge."""


class SolverError(AgileflexError, RuntimeError):
    """The MILP solver failed (not merely infeasible)."""


class ResultsError(AgileflexError, RuntimeError):
    """Stored results are missing, incomplete or inconsistent."""


class StaleError(ResultsError):
    """An upstream result file is missing, incomplete, corrupt, or was computed from other
    inputs than the current config and input files give (see :mod:`agileflex_hpc.fingerprint`)."""
