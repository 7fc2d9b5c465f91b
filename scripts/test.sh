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
# a SLURM of this user and checkout: its own state folder and ports (several checkouts or
# users on one machine do not collide); override with SLURM_LOCAL_DIR / *_PORT
key=$(printf '%s:%s' "$(id -u)" "$root" | sha1sum | cut -c1-8)
export SLURM_LOCAL_DIR="${SLURM_LOCAL_DIR:-/tmp/agileflex-slurm-$key}"
port=$((20000 + 16#${key:0:4} % 20000 * 2))
export SLURM_LOCAL_CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-$port}"
export SLURM_LOCAL_SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-$((port + 1))}"
slurm_started=0
already=0
bash scripts/slurm-local.sh status >/dev/null 2>&1 && already=1
if bash scripts/slurm-local.sh start; then
  ((already)) || slurm_started=1   # stop at the end only what this run started
  eval "$(bash scripts/slurm-local.sh env)"
elif [[ -n "${CI:-}" ]]; then
  echo "test: the local SLURM did not start and CI is set" >&2
  exit 1
else
  echo "test: no local SLURM (needs root/sudo); SLURM tests will be skipped" >&2
fi
# the report's browser test renders the page in headless Chromium (Debian package)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo_=(); [[ $EUID -eq 0 ]] || sudo_=(sudo -n)
  echo "test: installing chromium for the report's browser test ..." >&2
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { "${sudo_[@]}" apt-get update -qq >/dev/null 2>&1 &&
      "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } ||
    echo "test: chromium could not be installed; the browser test skips (fails under CI)" >&2
fi
cleanup() { [[ $slurm_started == 1 ]] && bash scripts/slurm-local.sh stop || true; }
trap cleanup EXIT
set +e
"$py" -m pytest "$@"
rc=$?
set -e
[[ $rc == 5 ]] && { echo "test: pytest collected no tests" >&2; rc=1; }
exit $rc
