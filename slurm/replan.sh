#!/bin/bash
#SBATCH --job-name=af-replan
#SBATCH --output=slurm-logs/%x_%j.out
#SBATCH --time=00:30:00
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=4G
#
# agileflex_hpc stage 'replan': the plan-validate loop's next round: tighten the EV bounds of
# the unproved zones (single job).
# Config: first argument, or $AGILEFLEX_CONFIG. Arguments after the config go to the stage CLI.
# Any #SBATCH default above can be overridden on the sbatch command line, e.g.
#   sbatch --dependency=afterok:<validate --gather id> slurm/replan.sh jobs/x.toml
# (create slurm-logs/ in the submit directory first; slurm/pipeline.sh does it for you)
set -euo pipefail

# ---- find the repo (sbatch runs a spooled copy of this file: $0 does not point into the repo)
for _d in "${AGILEFLEX_ROOT:-}" "${SLURM_SUBMIT_DIR:-}" "$PWD" "$(dirname -- "$0")/.."; do
    _d=$(cd -- "${_d:-/nonexistent}" 2>/dev/null && pwd -P) || continue
    while [[ ! -f $_d/slurm/common.sh && $_d != / ]]; do _d=$(dirname -- "$_d"); done
    [[ -f $_d/slurm/common.sh ]] && break
done
[[ -f $_d/slurm/common.sh ]] || { echo "agileflex: cannot find the repo: set AGILEFLEX_ROOT" >&2; exit 2; }
export AGILEFLEX_ROOT=$_d
# shellcheck source=slurm/common.sh
source "$AGILEFLEX_ROOT/slurm/common.sh"

af_header replan
exec "$PY" -m agileflex_hpc.replan "$CONFIG" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
