# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The protocol layer on the oldest supported protobuf runtime (3.20, pure Python).

``scripts/bootstrap.sh`` installs protobuf 3.20.3 into ``<venv>/protobuf-3.20``. This
module then runs itself as a script in a subprocess with that directory first on
PYTHONPATH and rclpy made unimportable: the subprocess decodes the frames the parent
built with the current runtime (7.x here), builds its own frames with the simulator,
and prints what it found. Everything must equal what the parent computes in-process
with the current runtime: parsed content, scanner offsets, decoded point buffers,
serialized clouds, JSON of the output messages, error kinds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from sensr_bridge.convert import cloud
from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import points, protocol, wire
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.frames import Frames

OLDEST = '3.20'
COMPAT_DIR = Path(os.environ.get('SENSR_BRIDGE_PROTOBUF_OLDEST',
                                 Path(sys.prefix) / 'protobuf-3.20'))
# Run this file as __main__ with rclpy blocked (a None entry makes its import fail).
_BOOT = ("import runpy, sys; sys.modules['rclpy'] = None; "
         "runpy.run_path(sys.argv[1], run_name='__main__')")
_NOW_NS = 1_700_000_000_123_456_789


def _sha(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()[:20]


def make_frames() -> Frames:
    return Frames(SimulatorConfig(output_port=0, point_port=0, points=2500, objects=3,
                                  object_points=5, frames_precomputed=2, seed=7))


def simulator_frames(frames: Frames) -> dict[str, list[bytes]]:
    """Frames of both ports, including ones the bridge must reject."""
    points = [frames.point_result(seq) for seq in range(3)]
    outputs = [frames.stream_message(seq, _NOW_NS + seq) for seq in range(3)]
    outputs += [frames.event_message(0, _NOW_NS), frames.custom_message(5, _NOW_NS)]
    bare = protocol.PointResult.FromString(points[0])
    bare.ClearField('uid')
    # Wrong port (without and with a uid), truncated, empty.
    outputs += [bare.SerializeToString(), points[0], outputs[0][:-3], b'']
    return {'points': points, 'outputs': outputs}


def point_digest(frame: bytes) -> dict:
    view = wire.scan_point_result(frame)
    parsed = protocol.PointResult.FromString(frame)
    result = {
        'uid': [view.uid, parsed.uid],
        'scanned': [[c.type, c.id, _sha(frame[c.points[0]:sum(c.points)]),
                     _sha(frame[c.intensities[0]:sum(c.intensities)]), c.unknown_fields]
                    for c in view.clouds],
        'parsed': [[c.type, c.id, _sha(c.points), _sha(c.intensities)] for c in parsed.points],
    }
    for mode in (points.MERGED, points.PER_TYPE):
        options = points.CloudOptions(mode=mode)
        plan = points.plan_frame(frame, options)
        out = bytearray(plan.nbytes)
        points.fill_points(frame, plan, options, memoryview(out))
        step = options.layout.point_step
        result[mode] = [plan.warnings] + [
            [s.key, s.width, _sha(cloud.serialize_cloud(
                _NOW_NS, 'sensr', options.layout, out[s.offset:s.offset + s.width * step]))]
            for s in plan.segments]
    return result


def output_digest(frame: bytes) -> dict:
    try:
        output = protocol.parse_output(frame)
    except DecodeError as exc:
        return {'error': exc.kind}
    result = {'json': json.dumps(protocol.to_dict(output), sort_keys=True)}
    for version in protocol.SensrVersion:
        custom = protocol.parse_custom(output, version)
        result[version.value] = None if custom is None else protocol.to_dict(custom)
    if output.HasField('stream'):
        result['labels'] = [protocol.enum_name(protocol.LABEL_TYPE, o.label)
                            for o in output.stream.objects]
    return result


def probe(frames: dict[str, list[bytes]]) -> dict:
    """Everything the protocol layer makes of the frames, as plain data."""
    import google.protobuf
    from google.protobuf.internal import api_implementation

    health = protocol.OutputMessage().stream.health
    return {
        'version': google.protobuf.__version__,
        'implementation': api_implementation.Type(),
        'rclpy_imported': sys.modules.get('rclpy') is not None,
        'classes_shared': [type(health) is protocol.SystemHealth,
                           protocol.SystemHealth.Node.DESCRIPTOR.full_name,
                           type(protocol.PointResult().points.add()).DESCRIPTOR.full_name],
        'unknown_enum': protocol.enum_name(protocol.LABEL_TYPE, 4242),
        'points': [point_digest(f) for f in frames['points']],
        'outputs': [output_digest(f) for f in frames['outputs']],
    }


def report(frames_path: str) -> dict:
    given = json.loads(Path(frames_path).read_text(encoding='utf-8'))
    frames = {k: [base64.b64decode(f) for f in v] for k, v in given.items()}
    own = simulator_frames(make_frames())
    return {'given': probe(frames), 'built': probe(own),
            'built_point_bytes': [_sha(f) for f in own['points']]}


def test_oldest_protobuf_runtime_decodes_like_the_current_one(tmp_path):
    if not (COMPAT_DIR / 'google' / 'protobuf').is_dir():
        pytest.skip(f'protobuf {OLDEST} is not installed in {COMPAT_DIR} '
                    '(scripts/bootstrap.sh installs it)')
    frames = simulator_frames(make_frames())
    frames_path = tmp_path / 'frames.json'
    frames_path.write_text(json.dumps({k: [base64.b64encode(f).decode() for f in v]
                                       for k, v in frames.items()}), encoding='utf-8')
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION')}
    env['PYTHONPATH'] = str(COMPAT_DIR)
    env['PYTHONNOUSERSITE'] = '1'
    result = subprocess.run([sys.executable, '-c', _BOOT, __file__, str(frames_path)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    old = json.loads(result.stdout)

    current = probe(frames)
    assert not current['version'].startswith(OLDEST)
    assert old['given']['version'].startswith(OLDEST)
    assert old['given']['implementation'] == 'python'
    assert old['given']['rclpy_imported'] is False
    assert old['given']['classes_shared'] == [True, 'sensr_proto.SystemHealth.Node',
                                              'sensr_proto.PointResult.PointCloud']
    # Both runtimes make the same of the same frames...
    for key in ('points', 'outputs', 'unknown_enum', 'classes_shared'):
        assert old['given'][key] == current[key], key
    # ...and the old one builds the same frames with the simulator.
    assert old['built']['points'] == current['points']
    assert old['built']['outputs'] == current['outputs']
    assert old['built_point_bytes'] == [_sha(f) for f in frames['points']]
    # The frames were not trivial: clouds, objects, every rejection kind.
    assert all(len(p['scanned']) == 4 for p in current['points'])
    errors = [o.get('error') for o in current['outputs']]
    assert (errors[-4], errors[-2], errors[-1]) == ('wrong_message', 'malformed', 'empty')
    assert any('stream' in o.get('json', '') for o in current['outputs'])


if __name__ == '__main__':
    print(json.dumps(report(sys.argv[2])))
