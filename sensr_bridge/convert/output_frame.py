# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""One SENSR OutputMessage (port 5050) to the ROS messages the bridge publishes.

Pure: no node and no rclpy, only message classes, so every conversion is tested on its
own (``test/test_outputs.py``). The bridge node publishes what :func:`convert` returns and
adds its counts; which topics exist is the node's business (``wanted``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from std_msgs.msg import String

from sensr_bridge.convert import cdr, cloud, outputs
from sensr_bridge.convert.objects import detection_array, frame_json, frame_rows, has_objects
from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import protocol

OUTPUT_LABEL = protocol.OutputMessage.DESCRIPTOR.full_name
"""The ``layout.dim[0].label`` of ``output_raw``: what its bytes are."""


@dataclass(frozen=True)
class OutputOptions:
    """How frames are converted.

    Attributes:
        frame_id: ``header.frame_id`` of every stamped message.
        stamp_from_sensr: Stamp with the message's SENSR timestamp (when it has one)
            instead of the receive time.
        version: The SENSR version whose custom messages are parsed.
        vision: The vision_msgs message classes (``objects.vision_msgs()``), or None.

    """

    frame_id: str
    stamp_from_sensr: bool
    version: protocol.SensrVersion
    vision: Any = None


@dataclass
class Converted:
    """What one frame became.

    Attributes:
        messages: (publisher key, message) in publishing order; only keys in ``wanted``.
        counts: Counter increments (``output_warning_*``, ``events_published``,
            ``objects_published``, ``output_bad_object_*``).
        warnings: (counter key, text) of problems worth a (throttled) log line.
        errors: Malformed parts of an otherwise good frame, to count as bad frames.
        health: The SENSR health messages of the frame, with their origin.

    """

    messages: list[tuple[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    health: list[tuple[Any, str]] = field(default_factory=list)


def convert(frame: bytes | bytearray, recv_ns: int, options: OutputOptions,
            wanted: frozenset[str] | set[str]) -> Converted:
    """Convert one OutputMessage.

    Args:
        frame: The websocket frame (a serialized OutputMessage).
        recv_ns: Receive time, the stamp unless SENSR's is used.
        options: Conversion options.
        wanted: Publisher keys that exist (``output_raw``, ``markers``, ``object_points``,
            ``objects_json``, ``objects``, ``zones``, ``zone_markers``, ``health``,
            ``events``, ``custom``).

    Returns:
        The messages to publish and what to count.

    Raises:
        DecodeError: The frame is not an OutputMessage.

    """
    msg = protocol.parse_output(frame)
    out = Converted()
    for warning in protocol.output_warnings(frame, msg):
        out.counts[f'output_warning_{warning}'] += 1
    stamp = recv_ns
    if options.stamp_from_sensr and msg.HasField('timestamp'):
        stamp = protocol.timestamp_ns(msg.timestamp)

    def emit(key: str, message: Any) -> None:
        if key in wanted:
            out.messages.append((key, message))

    if 'output_raw' in wanted:
        emit('output_raw', cdr.serialize_uint8_multiarray(OUTPUT_LABEL, frame))
    if msg.HasField('stream'):
        _stream(msg.stream, stamp, options, wanted, emit, out)
    if msg.HasField('event'):
        event = msg.event
        if event.zone or event.losing or event.online_recalibration:
            emit('events', String(data=outputs.to_json(event, stamp_ns=stamp)))
            out.counts['events_published'] += 1
        if event.HasField('health'):
            _health(event.health, stamp, 'event', emit, out)
    custom = protocol.parse_custom(msg, options.version)
    if custom is not None:
        emit('custom', String(data=outputs.to_json(custom, stamp_ns=stamp)))
    return out


def _stream(stream: Any, stamp: int, options: OutputOptions, wanted: frozenset[str] | set[str],
            emit: Any, out: Converted) -> None:
    frame_id = options.frame_id
    if stream.has_objects or stream.objects:
        objects = list(stream.objects)
        if 'markers' in wanted:
            emit('markers', outputs.object_markers(objects, stamp, frame_id))
        if 'object_points' in wanted:
            bad = outputs.bad_object_points(objects)
            if bad:
                out.errors.append(DecodeError(
                    'object_points_mismatch',
                    f'{bad} objects with inconsistent point/intensity bytes'))
            emit('object_points', cloud.serialize_cloud(
                stamp, frame_id, cloud.XYZI_OBJECT, outputs.object_points(objects)))
    if 'objects_json' in wanted and has_objects(stream):
        rows = frame_rows(stream)
        for reason, n in rows.skipped.items():
            key = f'output_bad_object_{reason}'
            out.counts[key] += n
            out.warnings.append((key, f'output: {n} object(s) skipped ({reason}): '
                                      f'{rows.first_error[reason]}'))
        emit('objects_json', String(data=frame_json(rows, stamp, frame_id)))
        if 'objects' in wanted:
            emit('objects', detection_array(rows.rows, stamp, frame_id, options.vision))
        out.counts['objects_published'] += len(rows.rows)
    if stream.has_zones or stream.zones:
        zones = list(stream.zones)
        emit('zones', String(data=outputs.zones_json(zones)))
        if 'zone_markers' in wanted:
            emit('zone_markers', outputs.zone_markers(zones, stamp, frame_id))
    if stream.HasField('health'):
        _health(stream.health, stamp, 'stream', emit, out)


def _health(health: Any, stamp: int, origin: str, emit: Any, out: Converted) -> None:
    out.health.append((health, origin))
    emit('health', String(data=outputs.to_json(health, stamp_ns=stamp, origin=origin)))
