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

__all__ = ["ALLOWED_COMMANDS", "FORBIDDEN_COMMANDS", "FORBIDDEN_OPTIONS", "check_network_files"]

# what a network description needs; anything else (or an abbreviation OpenDSS might read as
# one of FORBIDDEN_COMMANDS) is refused
ALLOWED_COMMANDS = frozenset({"new", "edit", "more", "m", "set", "redirect", "compile",
                              "calcvoltagebases", "calcv", "solve", "clear", "clearall",
                              "buscoords", "latlongcoords", "batchedit", "disable", "enable",
                              "open", "close", "makebuslist", "setkvbase", "setbusxy", "var",
                              "interpolate", "like", "reconductor"})
FORBIDDEN_COMMANDS = frozenset({"show", "export", "plot", "save", "fileedit", "visualize",
                                "doscmd", "_doscmd", "cd", "closedi", "zsc10", "comparecases",
                                "yearlycurves", "obfuscate", "summary", "alignfile",
                                "export_", "dump", "help", "about", "guids", "totals"})
FORBIDDEN_OPTIONS = frozenset({"editor", "datapath", "casename", "demandinterval",
                               "overloadreport", "voltexceptionreport", "log", "keeplist",
                               "markercode", "showexport", "dssvisualizationtool"})
_FIRST = re.compile(r"\s*([^\s=]+)")


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
                what, why = problem
                raise NetworkError(f"{path}, line {lineno}: {what} is not allowed in a "
                                   f"network file ({why}): {line.strip()[:80]!r}")


_DANGER = "it can start programs or write files"


def _problem(line: str) -> tuple[str, str] | None:
    """(what, why) of a line a network file may not hold, or None."""
    code = re.split(r"!|//", line, maxsplit=1)[0].strip()
    m = _FIRST.match(code)
    if not code or code.startswith("~") or not m:
        return None
    word = m.group(1).lower()
    if "." in word:  # Element.name.property=value: an edit
        return None
    allowed = word in ALLOWED_COMMANDS or _abbreviates(word, ALLOWED_COMMANDS, FORBIDDEN_COMMANDS)
    if not allowed:
        if word in FORBIDDEN_COMMANDS or (
                len(word) > 1 and any(f.startswith(word) for f in FORBIDDEN_COMMANDS)):
            return f"the command {m.group(1)!r}", _DANGER
        return (f"the command {m.group(1)!r}", "not a command a network description needs: "
                "misspelt? Allowed: " + ", ".join(sorted(ALLOWED_COMMANDS - {"m", "calcv"})))
    if word == "set" or (len(word) > 1 and "set".startswith(word)):
        for option in re.findall(r"([A-Za-z_]+)\s*=", code):
            if any(f.startswith(option.lower()) for f in FORBIDDEN_OPTIONS if len(option) > 1):
                return f"'Set {option}'", _DANGER
    return None


def _abbreviates(word: str, allowed: frozenset, forbidden: frozenset) -> bool:
    """``word`` (2+ letters) is the start of an allowed command and of no forbidden one."""
    return (len(word) > 1 and any(a.startswith(word) for a in allowed)
            and not any(f.startswith(word) for f in forbidden))
