#!/usr/bin/env bash
# Create ./.venv (or $AGILEFLEX_VENV) and install agileflex_hpc with its dependencies,
# MPI included (the MPICH wheel from PyPI; on a cluster, drop it to use the site MPI).
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh [--test]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AGILEFLEX_VENV:-$root/.venv}"
extras="mpich"
[[ "${1:-}" == "--test" ]] && extras="mpich,test"
py="${PYTHON:-python3}"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python >= 3.11 is required (found $("$py" --version 2>&1))" >&2; exit 1; }
if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup: creating $venv" >&2
  "$py" -m venv "$venv"
fi
stamp="$venv/.agileflex-$extras-$(sha1sum "$root/setup.cfg" | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root[$extras]" >&2
  touch "$stamp"
fi
"$venv/bin/python" - <<'PY' >&2
import opendssdirect, h5py, highspy, mpi4py  # noqa: F401  fail here, not mid-run
from mpi4py import MPI
print(f"setup: ok ({MPI.Get_library_version().splitlines()[0]})")
PY
echo "$venv/bin/python"
