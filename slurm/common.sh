# shellcheck shell=bash
# shellcheck disable=SC2034  # PY, CONFIG, EXTRA_ARGS, WORKER_ARGS are used by the stage script
# Sourced by the slurm/*.sh stage scripts (not run on its own).
#
# In:  the stage script's arguments "$@" (config path first, or $AGILEFLEX_CONFIG), AGILEFLEX_ROOT
#      (set by the stage script's bootstrap), AGILEFLEX_PYTHON (optional).
# Out: PY (python to run), CONFIG (absolute path), EXTRA_ARGS (arguments after the config),
#      WORKER_ARGS (kept empty: the stage CLIs read the array variables and AGILEFLEX_WORKERS),
#      the working directory is the repo root and the repo is on PYTHONPATH.
#
# Under sbatch the batch script is copied to the slurmd spool dir, so "dirname $0" is useless
# there: the stage scripts find the repo from $AGILEFLEX_ROOT, then $SLURM_SUBMIT_DIR (and its
# parents), then $PWD, then their own location (direct `bash slurm/x.sh` runs).

set -euo pipefail

af_die() {
    echo "agileflex slurm: ERROR: $*" >&2
    exit 2
}

[[ -n ${AGILEFLEX_ROOT:-} && -f $AGILEFLEX_ROOT/slurm/common.sh ]] ||
    af_die "AGILEFLEX_ROOT is not set to the repo root (the stage script sets it)"
AGILEFLEX_ROOT=$(cd -- "$AGILEFLEX_ROOT" && pwd -P)
export AGILEFLEX_ROOT

# ---- config: first argument (unless it is an option), else $AGILEFLEX_CONFIG
CONFIG=""
EXTRA_ARGS=()
if [[ $# -gt 0 && $1 != -* ]]; then
    CONFIG=$1
    shift
fi
EXTRA_ARGS=("$@")
CONFIG=${CONFIG:-${AGILEFLEX_CONFIG:-}}
[[ -n $CONFIG ]] || af_die "no job config: pass it as the first argument or set AGILEFLEX_CONFIG"
# relative paths are relative to where the job was submitted (the job starts there)
if [[ $CONFIG != /* ]]; then
    CONFIG=${SLURM_SUBMIT_DIR:-$PWD}/$CONFIG
fi
[[ -f $CONFIG ]] || af_die "job config not found: $CONFIG"
export AGILEFLEX_CONFIG=$CONFIG

# ---- python: $AGILEFLEX_PYTHON, else the repo's .venv, else python3
if [[ -n ${AGILEFLEX_PYTHON:-} ]]; then
    PY=$AGILEFLEX_PYTHON
elif [[ -x $AGILEFLEX_ROOT/.venv/bin/python ]]; then
    PY=$AGILEFLEX_ROOT/.venv/bin/python
else
    PY=python3
fi
command -v -- "$PY" >/dev/null 2>&1 || af_die "python not found: $PY (set AGILEFLEX_PYTHON)"

# ---- array share: the stage CLIs take worker = SLURM_ARRAY_TASK_ID and the number of workers
# from AGILEFLEX_WORKERS, else from a full 0..N-1 array (SLURM_ARRAY_TASK_COUNT). To rerun
# failed tasks of an N-task split: AGILEFLEX_WORKERS=N sbatch --array=<failed ids> slurm/x.sh
WORKER_ARGS=()

cd -- "$AGILEFLEX_ROOT"
export PYTHONPATH=$AGILEFLEX_ROOT${PYTHONPATH:+:$PYTHONPATH}

# one header line in the job log
af_header() {  # stage
    local task=""
    [[ -n ${SLURM_ARRAY_TASK_ID:-} ]] && task=" task ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT:-?}"
    echo "agileflex $1: job ${SLURM_JOB_ID:-none}${task} on $(hostname -s) at $(date -Is)" \
        "python=$PY config=$CONFIG" >&2
}
