"""Network files come from other people: refuse OpenDSS commands that start programs or write
files, before the engine sees them.

OpenDSS scripts can run an editor (``Set Editor=...`` then ``Show``), write reports
(``Show``, ``Export``, ``Save``, ``Plot``), change where files go (``Set DataPath``) or run shell
commands (``DOScmd``). None of them is needed to describe a network, so any of them in the
master or a file it redirects to is an error naming the file and the line. The engine is also
compiled with its editor, forms and shell commands switched off, and its data path in a private
temporary folder (see :mod:`agileflex_hpc.network.engine`).
"""

from __future__ import annotations

import re
from pathlib import Path

from agileflex_hpc.errors import NetworkError

__all__ = ["FORBIDDEN_COMMANDS", "FORBIDDEN_OPTIONS", "check_network_files"]

FORBIDDEN_COMMANDS = frozenset({"show", "export", "plot", "save", "fileedit", "visualize",
                                "doscmd", "_doscmd", "cd", "closedi", "zsc10", "comparecases",
                                "yearlycurves", "obfuscate", "export_", "summary"})
FORBIDDEN_OPTIONS = frozenset({"editor", "datapath", "casename", "demandinterval",
                               "overloadreport", "voltexceptionreport", "log", "keeplist",
                               "markercode"})
_WORD = re.compile(r"[A-Za-z_]+")


def check_network_files(files: list[Path]) -> None:
    """Raise :class:`NetworkError` at the first forbidden command of any of ``files``.

    Parameters
    ----------
    files : list of Path
        The master and every script it reads (see
        :func:`agileflex_hpc.fingerprint.network_files`); CSV files are skipped.
    """
    for path in files:
        if path.suffix.lower() == ".csv":
            continue
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            problem = _problem(line)
            if problem:
                raise NetworkError(f"{path}, line {lineno}: {problem} is not allowed in a "
                                   f"network file (it starts programs or writes files): "
                                   f"{line.strip()[:80]!r}")


def _problem(line: str) -> str | None:
    code = re.split(r"!|//", line, maxsplit=1)[0].strip()
    if not code:
        return None
    words = _WORD.findall(code.lower())
    if not words:
        return None
    if words[0] in FORBIDDEN_COMMANDS:
        return f"the command {words[0]!r}"
    if words[0] == "set":
        for option in re.findall(r"([A-Za-z_]+)\s*=", code):
            if option.lower() in FORBIDDEN_OPTIONS:
                return f"'Set {option}'"
    return None
