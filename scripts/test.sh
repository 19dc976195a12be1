#!/usr/bin/env bash
# The whole test suite on a fresh machine, against the ROS 2 Kilted and Jazzy wheels.
# Usage: scripts/test.sh [kilted] [jazzy] [-- pytest args]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
distros=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do distros+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#distros[@]} -eq 0 ] && distros=(kilted jazzy)
# Modules that use nothing of ROS 2 (no rclpy, no message packages, no node process):
# every distro's venv has the same Python packages for them, so they run with the first
# distro only (test/test_layout.py checks that they stay free of ROS).
ros_free=(test_fuzz test_simulator test_wire test_bag_clips test_lint test_layout
          test_mcap_file test_bag_queue test_protobuf_compat test_malloc test_bag_sqlite3
          test_bag_compression test_bag_contract)
# The benchmark harness's own tests run with the first distro only too: the nodes it
# drives are tested with every distro (test_record_e2e, test_faults_*, ...).
harness=(test_bench)
status=0
for distro in "${distros[@]}"; do
  echo "=== $distro ==="
  venv=$("$root/scripts/bootstrap.sh" "$distro") || { echo "bootstrap of $distro failed"; exit 1; }
  cd "$root"
  if [ "$distro" = "${distros[0]}" ]; then
    "$venv/bin/python" scripts/gen_proto.py --check || status=1
    "$venv/bin/ruff" check sensr_bridge test launch scripts setup.py || status=1
  fi
  skip=()
  if [ "$distro" != "${distros[0]}" ]; then
    for module in "${ros_free[@]}" "${harness[@]}"; do skip+=(--ignore "test/$module.py"); done
  fi
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${skip[@]}" "$@"
  rc=$?
  # pytest exit code 5 means no test ran: that is a failure here.
  if [ $rc -ne 0 ]; then echo "pytest on $distro failed (exit $rc)"; status=1; fi
done
exit $status
