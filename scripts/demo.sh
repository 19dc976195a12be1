#!/usr/bin/env bash
# The main job on a fresh machine: SENSR simulator -> bridge -> recorder -> a bag, then
# its summary. Extra arguments go to `python -m sensr_bridge.cli.record` (see --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/bootstrap.sh" kilted)
exec "$venv/bin/python" -m sensr_bridge.cli.record --simulate --duration 20 "$@"
