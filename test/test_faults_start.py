# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""SIGINT or SIGTERM while a program starts: a clean exit at every moment (shutdown.py).

Each program runs as the tests and launch run it (``python -m sensr_bridge.<module>``; the
composed process with the launch plan's command, orphan guard included; in a ROS 2
workspace also the installed node executables under the guard, as launch_ros starts
them), in a process group of its own, which gets the signal as a Ctrl+C gives it. The
moments, each awaited by watching the process (/proc has no events to wait on, so it is
polled every ms):

- ``guard``: the orphan guard runs with SIGINT and SIGTERM blocked (it must not start
  the program then);
- ``execed``: the guard became the program, whose interpreter and console script start
  (up to 0.5 s under a launch's load) before its handler is in place;
- ``handler``: it catches SIGTERM (/proc/PID/status ``SigCgt``), which Python alone does
  not: the handler of :mod:`sensr_bridge.process.shutdown` is in place, nothing else happened;
- ``restarted``: its environment holds ``MALLOC_ARENA_MAX``: the malloc restart's exec
  happened and the new image is still starting (the signal must wait for its handler);
- ``importing``: numpy's extension is mapped: rclpy, numpy and protobuf are being imported;
- ``child`` (record --simulate): its simulator process exists and is starting;
- ``logged``: a first line of its own (the recorder: its bag is open).

Every run must end with exit code 0, no traceback, ``KeyboardInterrupt`` or "Exception
ignored", no process of its group left, and no bag or a closed one (``metadata.yaml``,
readable).
"""

from __future__ import annotations

import ast
import ctypes
import os
from pathlib import Path
import platform
import re
import signal
import time

from helpers import ENV, PY, ROS_STACK_REQUIRED, Proc, free_ports, package_installed, wait_until
import psutil
import pytest
from rosbags.rosbag2 import Reader

from sensr_bridge.launching import plans
from sensr_bridge.process import malloc

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)
BOTH_BITS = SIGTERM_BIT | 1 << (signal.SIGINT - 1)


def _proc_file(pid: int, name: str) -> bytes:
    return Path(f'/proc/{pid}/{name}').read_bytes()


def _signal_set(pid: int, field: str) -> int:
    status = _proc_file(pid, 'status').decode()
    return int(re.search(rf'^{field}:\s*([0-9a-f]+)$', status, re.MULTILINE)[1], 16)


def catches_sigterm(pid: int) -> bool:
    return bool(_signal_set(pid, 'SigCgt') & SIGTERM_BIT)


def _blocked(pid: int) -> bool:
    return _signal_set(pid, 'SigBlk') & BOTH_BITS == BOTH_BITS and not catches_sigterm(pid)


def _guard_runs(pid: int) -> bool:
    return _proc_file(pid, 'cmdline').split(b'\0')[1:4] == [b'-I', b'-S', b'-c']


def in_guard(pid: int) -> bool:
    """The orphan guard runs, both signals blocked."""
    return _blocked(pid) and _guard_runs(pid)


def execed(pid: int) -> bool:
    """The guard became the program, whose handler is not in place yet."""
    return not _guard_runs(pid) and not catches_sigterm(pid)


def restarted(pid: int) -> bool:
    return b'\0MALLOC_ARENA_MAX=' in b'\0' + _proc_file(pid, 'environ')


def importing(pid: int) -> bool:
    return b'_multiarray_umath' in _proc_file(pid, 'maps')


def has_child(pid: int) -> bool:
    return bool(psutil.Process(pid).children())


MOMENTS = {'handler': catches_sigterm, 'restarted': restarted, 'importing': importing,
           'child': has_child, 'guard': in_guard, 'execed': execed}
FIRST_LINE = {'bridge_node': r'\S', 'recorder_node': r'recording to ', 'record': r'recording to ',
              'composed': r'recording to ', 'simulator': r'^ready ',
              'launched_recorder': r'recording to '}
"""The line of ``logged``: a recorder's bag is open once it says so."""


def await_moment(proc: Proc, moment: str) -> None:
    if moment == 'logged':
        proc.wait_line(FIRST_LINE[proc.name], timeout=60)
        return
    check = MOMENTS[moment]

    def reached() -> bool:
        try:
            # Both end once the program's handler is in place: stop waiting then.
            return (check(proc.pid) or proc.popen.poll() is not None
                    or (moment in {'guard', 'execed'} and catches_sigterm(proc.pid)))
        except (OSError, psutil.Error):  # it exited meanwhile
            return True

    assert wait_until(reached, timeout=30, interval=0.001), f'{proc.name}: no {moment}'
    if moment in {'guard', 'execed'}:
        assert check(proc.pid), f'{proc.name}: {moment} missed (or the signals not held)'
    assert proc.popen.poll() is None, f'{proc.name} exited before {moment}:\n{proc.output}'


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(['status']):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info['status'] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def program_cmd(program: str, out_dir: Path) -> list[str]:
    out_port, point_port = free_ports(2)  # nothing listens: the bridge retries
    if program == 'bridge_node':
        return [PY, '-m', 'sensr_bridge.nodes.bridge', '--ros-args', '-p',
                f'output_port:={out_port}', '-p', f'point_port:={point_port}']
    if program == 'recorder_node':
        return [PY, '-m', 'sensr_bridge.nodes.recorder', '--ros-args', '-p',
                f'output_dir:={out_dir}', '-p', 'bag_name:=bag', '-p', 'writer_backend:=python']
    if program == 'record':
        return [PY, '-m', 'sensr_bridge.cli.record', '--simulate', '--points', '2000', '--quiet',
                '--output-dir', str(out_dir), '--bag-name', 'bag', '--writer-backend', 'python']
    if program == 'composed':
        plan = plans.record_plan(
            {'composed': 'true', 'output_dir': str(out_dir), 'output_port': out_port,
             'point_port': point_port}, python=PY, have_rviz=False)
        return [*plan.guard, *plan.composed.cmd]
    if program.startswith('launched_'):  # as launch_ros runs them: guard, installed executable
        from ament_index_python.packages import get_package_prefix

        executable = Path(get_package_prefix(plans.PACKAGE), 'lib',
                          plans.PACKAGE, program.removeprefix('launched_') + '_node')
        return [*plans.orphan_guard(), str(executable),
                *program_cmd(program.removeprefix('launched_') + '_node', out_dir)[3:]]
    assert program == 'simulator'
    return [PY, '-m', 'sensr_bridge.sim', '--output-port', '0', '--point-port', '0',
            '--points', '2000']


CASES = [(program, moment, signal.SIGTERM if moment == 'restarted' else signal.SIGINT)
         for program, moments in (
             ('bridge_node', ('handler', 'restarted', 'importing', 'logged')),
             ('recorder_node', ('handler', 'restarted', 'importing', 'logged')),
             ('record', ('handler', 'restarted', 'importing', 'child', 'logged')),
             ('composed', ('guard', 'execed', 'handler', 'restarted', 'importing', 'logged')),
             ('simulator', ('handler', 'importing', 'logged')),
             ('launched_bridge', ('execed',)), ('launched_recorder', ('execed', 'logged')))
         for moment in moments]


@pytest.mark.parametrize(('program', 'moment', 'sig'), CASES,
                         ids=[f'{p}-{m}-{s.name}' for p, m, s in CASES])
def test_signal_while_starting_exits_cleanly(tmp_path, program, moment, sig):
    if moment == 'restarted' and any(name in ENV for name in malloc.ENVIRONMENT):
        pytest.skip('MALLOC_* variables set: the programs do not restart')
    if program.startswith('launched_') and not ROS_STACK_REQUIRED and not package_installed():
        pytest.skip('sensr_bridge is not built and sourced (colcon build)')
    out_dir = tmp_path / 'bags'
    proc = Proc(program, program_cmd(program, out_dir), process_group=0)
    try:
        await_moment(proc, moment)
        sent = time.monotonic()
        os.killpg(proc.pid, sig)
        code = proc.wait_exit(timeout=30)
        print(f'{program} {moment} {sig.name}: exit {code} after '
              f'{proc.exited_at - sent:.2f} s')
        out = proc.output
        assert code == 0, f'{program}: exit code {code}:\n{out}'
        for bad in ('Traceback', 'KeyboardInterrupt', 'Exception ignored'):
            assert bad not in out, f'{program}: {bad}:\n{out}'
        assert not group_members(proc.pid), group_members(proc.pid)
        opened = re.search(r'recording to (\S+)', out)
        if opened is None:  # stopped before the recorder configured: no bag at all
            assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())
        else:
            bag = Path(opened[1])
            assert (bag / 'metadata.yaml').exists(), sorted(bag.iterdir())
            with Reader(bag) as reader:
                assert reader.connections is not None
    finally:
        if proc.exited_at is None:
            proc.kill_tree()


def test_program_console_scripts_start_in_shutdown_entries():
    """``ros2 run`` and the PyPI scripts enter through process.shutdown, not the modules."""
    setup = (Path(__file__).resolve().parents[1] / 'setup.py').read_text(encoding='utf-8')
    scripts = next(node for node in ast.walk(ast.parse(setup))
                   if isinstance(node, ast.Dict) and any(
                       isinstance(k, ast.Constant) and k.value == 'console_scripts'
                       for k in node.keys))
    entries = dict(re.fullmatch(r'(\w+) = ([\w.:]+)', item.value).groups()
                   for item in scripts.values[0].elts)
    for program in ('bridge_node', 'recorder_node', 'record', 'simulator'):
        assert entries[program] == f'sensr_bridge.process.shutdown:{program}', entries


_SYS_TGKILL = {'x86_64': 234, 'aarch64': 131}


def tgkill(pid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to one thread of another process (Linux ``tgkill``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_TGKILL[platform.machine()], pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), 'tgkill failed')


def other_thread(pid: int) -> int:
    """A thread of ``pid`` other than its main thread that does not block SIGINT."""
    for tid in sorted(int(t) for t in os.listdir(f'/proc/{pid}/task')):
        status = Path(f'/proc/{pid}/task/{tid}/status').read_text()
        blocked = int(re.search(r'^SigBlk:\s*([0-9a-f]+)$', status, re.MULTILINE)[1], 16)
        if tid != pid and not blocked & 1 << (signal.SIGINT - 1):
            return tid
    pytest.fail(f'no thread of {pid} takes SIGINT')


@pytest.mark.skipif(platform.machine() not in _SYS_TGKILL, reason='tgkill number unknown')
@pytest.mark.parametrize('program', ['bridge_node', 'recorder_node', 'composed', 'simulator'])
def test_a_signal_taken_by_another_thread_still_stops_the_program(tmp_path, program):
    # The kernel may hand a process's SIGINT to any thread that does not block it (DDS,
    # executor and BLAS threads do not); Python then runs the handler only when the main
    # thread next runs bytecode. A main thread in a wait without a timeout never did:
    # the recorder kept recording after a Ctrl+C (seen in CI).
    proc = Proc(program, program_cmd(program, tmp_path / 'bags'), process_group=0)
    try:
        proc.wait_line(FIRST_LINE[program], timeout=60)
        tgkill(proc.pid, other_thread(proc.pid), signal.SIGINT)
        code = proc.wait_exit(timeout=15)
        assert code == 0, f'{program}: exit code {code}:\n{proc.output}'
        assert 'Traceback' not in proc.output, proc.output
    finally:
        if proc.exited_at is None:
            proc.kill_tree()
