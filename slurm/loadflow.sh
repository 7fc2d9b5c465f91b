#!/bin/bash
#SBATCH --job-name=af-loadflow
#SBATCH --output=slurm-logs/%x_%A_%a.out
#SBATCH --time=04:00:00
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=4G
#
# agileflex_hpc stage 'loadflow': Power flows of the network/feeder cases; an array job, each task takes its share
# (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT).
# Config: first argument, or $AGILEFLEX_CONFIG. Arguments after the config go to the stage CLI.
# Any #SBATCH default above can be overridden on the sbatch command line, e.g.
#   sbatch --array=0-3 slurm/loadflow.sh jobs/x.toml
#   sbatch --ntasks=4 slurm/loadflow.sh jobs/x.toml          # MPI inside the job (srun --mpi=pmi2)
#   AGILEFLEX_MPI=1 sbatch --array=0-1 --ntasks=2 slurm/loadflow.sh jobs/x.toml
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

af_header loadflow

# MPI inside SLURM: AGILEFLEX_MPI=1, or more than one task in the allocation (AGILEFLEX_MPI=0 forbids).
# Pip MPICH only gets correct ranks from srun with --mpi=pmi2 (without it every rank silently
# sees a world of size 1); AGILEFLEX_SRUN_MPI overrides it (e.g. pmix for a site MPI).
if [[ ${AGILEFLEX_MPI:-} == 1 || ( ${AGILEFLEX_MPI:-} != 0 && ${SLURM_NTASKS:-1} -gt 1 ) ]]; then
    exec srun --mpi="${AGILEFLEX_SRUN_MPI:-pmi2}" "$PY" -m mpi4py -m agileflex_hpc.loadflow "$CONFIG" \
        ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
fi
exec "$PY" -m agileflex_hpc.loadflow "$CONFIG" ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
