#!/usr/bin/env bash
# The test suite inside a real ROS 2 installation: colcon builds the package into a
# temporary workspace, which is sourced, and pytest runs with SENSR_ROS_STACK=required, so
# no test may skip for lack of rosbag2_py, launch, the ros2 CLI or the installed package.
# Usage: scripts/test_ros2.sh [-- pytest args]
# With no ROS 2 sourced, the development stack ../shared/ros2v is provisioned at
# /opt/ros2v and sourced (with the package's Python dependencies in its venv).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ "${1:-}" = "--" ] && shift
if [ -z "${ROS_DISTRO:-}" ]; then
  shared="$root/../shared/ros2v"
  [ -x "$shared/provision.sh" ] || { echo "no ROS 2 sourced and no $shared to provision"; exit 1; }
  "$shared/provision.sh" || { echo "provisioning $shared failed"; exit 1; }
  # shellcheck disable=SC1091
  set +u; source /opt/ros2v/setup.sh; set -u
  "$root/scripts/bootstrap.sh" ros2v >/dev/null || { echo "bootstrap of ros2v failed"; exit 1; }
fi
echo "=== ROS 2 $ROS_DISTRO installation ==="
ws=$(mktemp -d /tmp/sensr_bridge_ws.XXXXXX)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/src"
ln -s "$root" "$ws/src/sensr_bridge"
(cd "$ws" && colcon build --packages-select sensr_bridge --event-handlers console_cohesion- \
  >"$ws/build.log" 2>&1) || { cat "$ws/build.log"; echo "colcon build failed"; exit 1; }
# shellcheck disable=SC1091
set +u; source "$ws/install/local_setup.bash"; set -u
cd "$root"
SENSR_ROS_STACK=required python -m pytest -q -p no:cacheprovider "$@"
rc=$?
# pytest exit code 5 means no test ran: that is a failure here.
if [ $rc -ne 0 ]; then echo "pytest in the ROS 2 installation failed (exit $rc)"; exit 1; fi
