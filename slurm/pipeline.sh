#!/bin/bash
# Submit the whole agileflex_hpc pipeline as a chain of SLURM jobs (run on a login node, not via sbatch):
#
#   loadflow (array) -> gather -> headroom -> ev (array) -> validate (array) -> validate --gather
#   [-> replan -> ev (array) -> validate (array) -> validate --gather]  x (validate.max_rounds - 1)
#   -> report
# The plan-validate rounds are always submitted; a round after the proof holds finds every
# result current and does nothing.
#
# Each job depends on the previous one with --dependency=afterok:<id> and --kill-on-invalid-dep=yes,
# so a failing stage cancels everything after it instead of leaving it pending forever.
#
# Usage: slurm/pipeline.sh CONFIG [options] [-- extra sbatch options for every job]
#   --workers N           tasks of each array stage (loadflow, ev, validate)
#                         [the config's slurm.workers, else 4]
#   --loadflow-workers N / --ev-workers N / --validate-workers N   per-stage override
#   --max-parallel M      at most M tasks of an array run at once (--array=0-{N-1}%M)
#                         [the config's slurm.max_parallel]
#   --from STAGE          start at STAGE (loadflow gather headroom ev validate validate-gather
#                         report); the earlier stages' outputs must already exist
#   --dry-run             print the sbatch commands instead of submitting
#   -h, --help
# Environment: AGILEFLEX_PYTHON, AGILEFLEX_MPI, ... are passed on to the jobs (sbatch --export=ALL);
#   AGILEFLEX_SBATCH_ARGS: extra sbatch options for every job (e.g. "--account=x --partition=y").
#
# Prints one "stage<TAB>jobid" line per submitted job on stdout; job logs go to ./slurm-logs/.
# Exits non-zero (after cancelling what it submitted) if any sbatch fails.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() {
    echo "pipeline.sh: ERROR: $*" >&2
    exit 2
}

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname -- "$HERE")
STAGES=(loadflow gather headroom ev validate validate-gather report)

CONFIG=""
WORKERS=""
LF_WORKERS="" EV_WORKERS="" VAL_WORKERS=""
MAX_PAR=""
FROM=loadflow
DRY=0
EXTRA_SBATCH=()
read -r -a EXTRA_SBATCH <<<"${AGILEFLEX_SBATCH_ARGS:-}"

posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, got '$2'"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --workers) posint "$1" "${2:-}"; WORKERS=$2; shift 2 ;;
        --workers=*) posint --workers "${1#*=}"; WORKERS=${1#*=}; shift ;;
        --loadflow-workers) posint "$1" "${2:-}"; LF_WORKERS=$2; shift 2 ;;
        --ev-workers) posint "$1" "${2:-}"; EV_WORKERS=$2; shift 2 ;;
        --validate-workers) posint "$1" "${2:-}"; VAL_WORKERS=$2; shift 2 ;;
        --max-parallel) posint "$1" "${2:-}"; MAX_PAR=$2; shift 2 ;;
        --max-parallel=*) posint --max-parallel "${1#*=}"; MAX_PAR=${1#*=}; shift ;;
        --from) FROM=${2:?--from needs a stage}; shift 2 ;;
        --from=*) FROM=${1#*=}; shift ;;
        --dry-run) DRY=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; EXTRA_SBATCH+=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [[ -z $CONFIG ]] || die "more than one config given: $CONFIG $1"
            CONFIG=$1
            shift
            ;;
    esac
done
CONFIG=${CONFIG:-${AGILEFLEX_CONFIG:-}}
[[ -n $CONFIG ]] || { usage >&2; die "no job config given"; }
[[ -f $CONFIG ]] || die "job config not found: $CONFIG"
CONFIG=$(cd -- "$(dirname -- "$CONFIG")" && pwd -P)/$(basename -- "$CONFIG")
# the config is checked before anything is submitted, and gives the defaults
PYCHECK=${AGILEFLEX_PYTHON:-}
[[ -z $PYCHECK && -x $ROOT/.venv/bin/python ]] && PYCHECK=$ROOT/.venv/bin/python
PYCHECK=${PYCHECK:-python3}
if ! defaults=$(cd -- "$ROOT" && "$PYCHECK" -c 'import sys
from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConfigError
try:
    c = load_config(sys.argv[1])
except ConfigError as exc:
    sys.exit(str(exc))
print(c.slurm.workers, c.slurm.max_parallel, c.validate.max_rounds)' "$CONFIG"); then
    die "bad job config $CONFIG (see above)"
fi
read -r CFG_WORKERS CFG_MAXPAR MAX_ROUNDS <<<"${defaults:-4 0 1}"
WORKERS=${WORKERS:-${CFG_WORKERS:-4}}
[[ -z $MAX_PAR && ${CFG_MAXPAR:-0} != 0 ]] && MAX_PAR=$CFG_MAXPAR
LF_WORKERS=${LF_WORKERS:-$WORKERS}
EV_WORKERS=${EV_WORKERS:-$WORKERS}
VAL_WORKERS=${VAL_WORKERS:-$WORKERS}

start=-1
for i in "${!STAGES[@]}"; do [[ ${STAGES[$i]} == "$FROM" ]] && start=$i; done
((start >= 0)) || die "--from: unknown stage '$FROM' (one of: ${STAGES[*]})"

if ((DRY == 0)); then
    command -v sbatch >/dev/null 2>&1 || die "sbatch not found (not on a SLURM login node?)"
fi

# the jobs find the repo through AGILEFLEX_ROOT (their script is a spooled copy)
export AGILEFLEX_ROOT=$ROOT
export AGILEFLEX_CONFIG=$CONFIG
mkdir -p slurm-logs

SUBMITTED=()
array_spec() {  # workers
    local spec="0-$(($1 - 1))"
    [[ -n $MAX_PAR ]] && spec+="%$MAX_PAR"
    echo "$spec"
}

# submit STAGE SCRIPT [sbatch options...] -- [script args...]; sets JOBID
submit() {
    local stage=$1 script=$2 out
    shift 2
    local opts=() args=()
    while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    args=("$@")
    if [[ -n ${PREV:-} ]]; then
        opts+=(--dependency="afterok:$PREV" --kill-on-invalid-dep=yes)
    fi
    local cmd=(sbatch --parsable "${opts[@]}" ${EXTRA_SBATCH[@]+"${EXTRA_SBATCH[@]}"} "$HERE/$script" "$CONFIG" ${args[@]+"${args[@]}"})
    if ((DRY)); then
        JOBID="<$stage>"
        printf '%q ' "${cmd[@]}" >&2
        echo >&2
    elif ! out=$("${cmd[@]}"); then
        echo "pipeline.sh: ERROR: sbatch failed for stage $stage" >&2
        if ((${#SUBMITTED[@]})); then
            echo "pipeline.sh: cancelling the jobs already submitted: ${SUBMITTED[*]}" >&2
            scancel "${SUBMITTED[@]}" || true
        fi
        exit 1
    else
        JOBID=${out%%;*} # --parsable prints "jobid[;cluster]"
        [[ $JOBID =~ ^[0-9]+$ ]] || die "unexpected sbatch output for stage $stage: $out"
        SUBMITTED+=("$JOBID")
    fi
    printf '%s\t%s\n' "$stage" "$JOBID"
    PREV=$JOBID
}

PREV=""
for ((i = start; i < ${#STAGES[@]}; i++)); do
    case ${STAGES[$i]} in
        loadflow) submit loadflow loadflow.sh --array="$(array_spec "$LF_WORKERS")" -- ;;
        gather) submit gather gather.sh -- ;;
        headroom) submit headroom headroom.sh -- ;;
        ev) submit ev ev.sh --array="$(array_spec "$EV_WORKERS")" -- ;;
        validate) submit validate validate.sh --array="$(array_spec "$VAL_WORKERS")" -- ;;
        validate-gather)
            submit validate-gather validate.sh --job-name=af-validate-gather \
                --output=slurm-logs/%x_%j.out -- --gather
            ;;
        report)
            for ((r = 2; r <= MAX_ROUNDS; r++)); do
                submit "replan-$r" replan.sh --job-name="af-replan-$r" --
                submit "ev-$r" ev.sh --array="$(array_spec "$EV_WORKERS")" --
                submit "validate-$r" validate.sh --array="$(array_spec "$VAL_WORKERS")" --
                submit "validate-gather-$r" validate.sh --job-name="af-validate-gather-$r" \
                    --output=slurm-logs/%x_%j.out -- --gather
            done
            submit report report.sh --
            ;;
    esac
done
