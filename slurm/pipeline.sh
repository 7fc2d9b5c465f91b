#!/bin/bash
# Submit the whole agileflex_hpc pipeline as a chain of dependent SLURM jobs (on a login node):
#   bash slurm/pipeline.sh CONFIG [--workers N] [--from STAGE] [--max-parallel M] [--dry-run]
#                                 [-- extra sbatch options for every job]
# The same as `agileflex submit CONFIG ...` (see `agileflex submit --help`), for a checkout:
# it runs with the checkout's .venv python (else $AGILEFLEX_PYTHON, else python3).
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
if [[ -x $ROOT/.venv/bin/python ]]; then PY=$ROOT/.venv/bin/python
else PY=${AGILEFLEX_PYTHON:-python3}; fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
exec "$PY" -m agileflex_hpc submit "$@"
