#!/usr/bin/env bash
# Set up (first time only) and run the whole test suite, slow, MPI and SLURM tests included:
#   bash scripts/test.sh [pytest args...]
# Starts a local single-node SLURM for the SLURM tests (needs root or sudo; installs the
# Debian packages the first time) and stops it afterwards. Where CI is set, a missing MPI,
# SLURM or ../shared fails the run instead of skipping.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="$(bash scripts/setup.sh --test)"
export PATH="$(dirname "$py"):$PATH"        # mpirun from the MPICH wheel
export AGILEFLEX_PYTHON="$py"               # the python SLURM jobs run
slurm_started=0
if bash scripts/slurm-local.sh start; then
  slurm_started=1
  eval "$(bash scripts/slurm-local.sh env)"
elif [[ -n "${CI:-}" ]]; then
  echo "test: the local SLURM did not start and CI is set" >&2
  exit 1
else
  echo "test: no local SLURM (needs root/sudo); SLURM tests will be skipped" >&2
fi
cleanup() { [[ $slurm_started == 1 ]] && bash scripts/slurm-local.sh stop || true; }
trap cleanup EXIT
set +e
"$py" -m pytest "$@"
rc=$?
set -e
[[ $rc == 5 ]] && { echo "test: pytest collected no tests" >&2; rc=1; }
exit $rc
