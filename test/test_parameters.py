# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Parameters given with the wrong type or out of range: one line and exit code 1.

The node programs run as an operator starts them (``python -m ... --ros-args -p``); the
declarations are also checked in-process with the same command-line arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import rclpy
from rclpy.parameter import Parameter

from sensr_bridge.nodes import params
from sensr_bridge.nodes.bridge import BridgeNode
from sensr_bridge.nodes.declaration import ParameterError
from sensr_bridge.nodes.recorder import RecorderNode

TIMEOUT = 60


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def run(module, *params):
    args = [sys.executable, '-m', f'sensr_bridge.{module}', '--ros-args']
    for param in params:
        args += ['-p', param]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, check=False,
                          env={**os.environ, 'RCUTILS_COLORIZED_OUTPUT': '0'})


@pytest.mark.parametrize(('module', 'param', 'expected'), [
    ('nodes.bridge', 'output_port:=abc',
     "parameter output_port: expected an integer, got 'abc' (a string)"),
    ('nodes.bridge', 'output_port:=70000',
     'parameter output_port: 70000 is out of range (expected 0..65535)'),
    ('nodes.bridge', 'stall_timeout:=-3',
     'parameter stall_timeout: -3.0 is out of range (expected 0.0..86400.0)'),
    ('nodes.bridge', 'sensr_version:=2.5',
     'parameter sensr_version: expected a string (or one of the numbers 3.0, 3.1), got 2.5'),
    ('nodes.recorder', 'metadata_version:=nine',
     "parameter metadata_version: expected an integer, got 'nine' (a string)"),
    ('nodes.recorder', 'topics:=7', 'parameter topics: expected a list of strings, got 7'),
])
def test_wrong_type_or_range_is_one_line_and_exit_1(module, param, expected):
    done = run(module, param)
    assert done.returncode == 1, done
    # Jazzy's rcl warns about ROS_LOCALHOST_ONLY (set by conftest): not ours.
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and '[rcl]' not in line]
    assert len(lines) == 1, lines
    assert '[ERROR]' in lines[0] and expected in lines[0], lines
    assert 'Traceback' not in done.stderr


def test_a_whole_number_is_accepted_for_a_float(context):
    node = BridgeNode(context=context, cli_args=['--ros-args', '-p', 'stall_timeout:=5'])
    try:
        assert node.get_parameter('stall_timeout').value == 5.0
        assert node.get_parameter('stall_timeout').type_ == Parameter.Type.DOUBLE
    finally:
        node.destroy_node()


def test_sensr_version_given_as_a_number_is_accepted(context):
    for given, expected in (('3.0', '3.0'), ('3.1', '3.1'), ("'3.0'", '3.0')):
        node = BridgeNode(context=context, cli_args=['--ros-args', '-p',
                                                      f'sensr_version:={given}'])
        try:
            assert node.get_parameter('sensr_version').value == expected
            assert node.describe_parameter('sensr_version').read_only
        finally:
            node.destroy_node()


def test_declared_with_ranges_and_read_only(context):
    node = RecorderNode(context=context, parameter_overrides=[
        Parameter('max_queue_bytes', value=1 << 20)])
    try:
        assert node.get_parameter('max_queue_bytes').value == 1 << 20
        version = node.describe_parameter('metadata_version')
        assert (version.integer_range[0].from_value, version.integer_range[0].to_value) == (8, 9)
        assert version.read_only
        delay = node.describe_parameter('batch_max_delay')
        assert delay.floating_point_range[0].from_value == 0.0
    finally:
        node.destroy_node()
    bridge = BridgeNode(context=context)
    try:
        port = bridge.describe_parameter('point_port').integer_range[0]
        assert (port.from_value, port.to_value) == (0, 65535)
        assert not bridge.describe_parameter('stats_log_period').read_only
        assert bridge.describe_parameter('host').read_only
    finally:
        bridge.destroy_node()


def test_error_in_process_names_parameter_and_node(context):
    with pytest.raises(ParameterError) as caught:
        BridgeNode(namespace='lidar', context=context,
                   parameter_overrides=[Parameter('stall_timeout', value='5 s')])
    assert str(caught.value) == ('parameter stall_timeout: expected a number with a decimal '
                                 "point, got '5 s' (a string)")
    assert caught.value.parameter == 'stall_timeout'
    assert caught.value.logger_name == 'lidar.sensr_bridge'


def test_every_range_and_choice_holds_the_default():
    for param in params.BRIDGE + params.RECORDER:
        if param.range is not None:
            assert type(param.default) in (int, float), param
            assert param.range[0] <= param.default <= param.range[1], param
        if param.choices:
            assert param.default in param.choices, param
