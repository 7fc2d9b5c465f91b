#!/usr/bin/env bash
# Set up (first time only) and run the main job on the embedded default network:
#   bash scripts/demo.sh [jobs/demo.toml]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$root/scripts/setup.sh")"
cd "$root"
exec "$py" -m agileflex_hpc run "${1:-jobs/demo.toml}"
