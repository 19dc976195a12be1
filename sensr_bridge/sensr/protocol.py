# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The SENSR wire protocol: message classes, enums and tolerant parsing.

Message classes are built at import time from the serialized descriptor set in
:mod:`sensr_bridge.sensr._sensr_descriptor` inside a private descriptor pool, so they never
clash with SENSR's own ``sensr_proto`` modules loaded in the same process, and they work
on every protobuf runtime from 3.20 to 7.x.

Ports: 5050 carries :data:`OutputMessage`, 5051 carries :data:`PointResult`; one
serialized message per binary websocket message.
"""

from __future__ import annotations

from enum import Enum
import functools
import inspect
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError as _PbDecodeError

from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import wire
from sensr_bridge.sensr._sensr_descriptor import FILE_DESCRIPTOR_SET

if TYPE_CHECKING:
    from google.protobuf.descriptor import EnumDescriptor
    from google.protobuf.message import Message

OUTPUT_PORT = 5050
POINT_PORT = 5051


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    fds = descriptor_pb2.FileDescriptorSet.FromString(FILE_DESCRIPTOR_SET)
    for file_proto in fds.file:
        pool.Add(file_proto)
    return pool


_POOL = _build_pool()


def message_class(full_name: str) -> type[Message]:
    """Return the generated class of a message in the SENSR schema.

    Args:
        full_name: Fully qualified name, e.g. ``sensr_proto.OutputMessage``.

    Returns:
        The message class.

    """
    desc = _POOL.FindMessageTypeByName(full_name)
    get_class = getattr(message_factory, 'GetMessageClass', None)
    if get_class is not None:
        return get_class(desc)
    return _legacy_class(desc)  # pragma: no cover


@functools.cache
def _legacy_factory() -> Any:  # pragma: no cover
    return message_factory.MessageFactory(_POOL)


def _legacy_class(desc: Any) -> type[Message]:  # pragma: no cover
    """Return a message class on protobuf < 4.22, which has no ``GetMessageClass``.

    One factory serves every class (each factory makes classes of its own, and a
    sub-message must be of its parent's class), and nested types are attached as class
    attributes (``SystemHealth.Node``) as generated ``_pb2`` modules do.
    """
    cls = _legacy_factory().GetPrototype(desc)
    for nested in desc.nested_types:
        if not hasattr(cls, nested.name):
            setattr(cls, nested.name, _legacy_class(nested))
    return cls


OutputMessage = message_class('sensr_proto.OutputMessage')
PointResult = message_class('sensr_proto.PointResult')
CustomMessage = message_class('sensr_proto.CustomMessage')
CustomMessageV30 = message_class('sensr_proto.CustomMessageV30')
SystemHealth = message_class('sensr_proto.SystemHealth')
Object = message_class('sensr_proto.Object')
ZoneConfig = message_class('sensr_proto.ZoneConfig')


class SensrVersion(str, Enum):
    """Schema generation of the SENSR server, where the wire layouts differ."""

    V31 = '3.1'
    """SENSR 3.1 and later (the default)."""
    V30 = '3.0'
    """SENSR 3.0 and SENSR-S 2.5: CustomMessage fields 102-104 numbered differently."""


def _enum(full_name: str) -> EnumDescriptor:
    return _POOL.FindEnumTypeByName(full_name)


LABEL_TYPE = _enum('sensr_proto.LabelType')
TRACKING_STATUS = _enum('sensr_proto.TrackingStatus')
ZONE_TYPE = _enum('sensr_proto.ZoneType')
CLOUD_TYPE = _enum('sensr_proto.PointResult.PointCloud.Type')
HEALTH_STATUS = _enum('sensr_proto.SystemHealth.Status')
NODE_STATUS = _enum('sensr_proto.SystemHealth.Node.Status')
SENSOR_STATUS = _enum('sensr_proto.SystemHealth.Node.SensorStatus')
ZONE_EVENT_TYPE = _enum('sensr_proto.ZoneEvent.Type')

CLOUD_GROUND = CLOUD_TYPE.values_by_name['GROUND'].number
CLOUD_BACKGROUND = CLOUD_TYPE.values_by_name['BACKGROUND'].number
CLOUD_RAW = CLOUD_TYPE.values_by_name['RAW'].number
HEALTH_OUTPUT_BUFFER_OVERFLOW = HEALTH_STATUS.values_by_name['OUTPUT_BUFFER_OVERFLOW'].number


def enum_name(enum: EnumDescriptor, value: int) -> str:
    """Return the name of an enum value, tolerating values newer than this schema.

    Args:
        enum: Descriptor of the enum, e.g. :data:`LABEL_TYPE`.
        value: The number received.

    Returns:
        The value's name, or ``UNKNOWN_<value>`` for a number the schema lacks.

    """
    found = enum.values_by_number.get(value)
    return found.name if found is not None else f'UNKNOWN_{value}'


def timestamp_ns(ts: Any) -> int:
    """Return a ``google.protobuf.Timestamp`` as integer nanoseconds since the epoch."""
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def parse_output(data: bytes | memoryview) -> Message:
    """Parse one frame of the output port (5050).

    Args:
        data: The whole binary websocket message.

    Returns:
        The parsed ``OutputMessage``.

    Raises:
        DecodeError: ``empty`` for an empty frame, ``malformed`` when protobuf rejects
            the bytes, ``wrong_message`` when the bytes parse but carry nothing an
            OutputMessage has (typically a PointResult sent to the wrong port).

    """
    if len(data) == 0:
        msg = 'empty frame on the output port'
        raise DecodeError('empty', msg)
    out = OutputMessage()
    try:
        out.ParseFromString(bytes(data) if isinstance(data, memoryview) else data)
    except _PbDecodeError as exc:
        msg = f'malformed OutputMessage ({len(data)} bytes): {exc}'
        raise DecodeError('malformed', msg) from exc
    if not any(out.HasField(f) for f in ('stream', 'event', 'custom')) and (
            not out.HasField('timestamp') or _foreign_timestamp(data)):
        msg = f'frame of {len(data)} bytes is not an OutputMessage (a PointResult on 5050?)'
        raise DecodeError('wrong_message', msg)
    return out


def output_warnings(data: bytes | bytearray | memoryview, message: Message) -> list[str]:
    """Return what a parsed OutputMessage carries that this schema does not know.

    Such frames come from a newer SENSR; they are published anyway and counted.

    Args:
        data: The frame ``message`` was parsed from.
        message: The parsed ``OutputMessage``.

    Returns:
        Counter keys: ``unknown_fields`` (top-level fields not in the schema) and
        ``unknown_enum`` (an object label or tracking status newer than the schema).

    """
    warnings = []
    try:
        unknown = wire.count_unknown_fields(memoryview(data).cast('B'), _OUTPUT_FIELDS)
    except DecodeError:
        unknown = 1  # protobuf took it, the stricter scanner did not (e.g. deep groups)
    if unknown:
        warnings.append('unknown_fields')
    if message.HasField('stream'):
        labels = LABEL_TYPE.values_by_number
        statuses = TRACKING_STATUS.values_by_number
        if any(o.label not in labels or o.tracking_status not in statuses
               for o in message.stream.objects):
            warnings.append('unknown_enum')
    return warnings


# Every top-level field of OutputMessage is a message, i.e. length-delimited on the wire.
_OUTPUT_FIELDS = {f.number: wire.LENGTH_DELIMITED for f in OutputMessage.DESCRIPTOR.fields}


def _foreign_timestamp(data: bytes | memoryview) -> bool:
    """Tell whether field 1 holds something other than a Timestamp (e.g. a PointCloud)."""
    buf = memoryview(data).cast('B')
    for number, wire_type, start, end in wire.iter_fields(buf, 0, len(buf)):
        if number == 1 and wire_type == wire.LENGTH_DELIMITED and wire.count_unknown_fields(
                buf[start:end], _TIMESTAMP_FIELDS):
            return True
    return False


_TIMESTAMP_FIELDS = {1: wire.VARINT, 2: wire.VARINT}


def parse_custom(output: Message, version: SensrVersion) -> Message | None:
    """Return ``output.custom`` read with the layout of the given SENSR version.

    Args:
        output: A parsed OutputMessage.
        version: Which numbering of CustomMessage the server uses.

    Returns:
        ``CustomMessage`` (3.1+) or ``CustomMessageV30``, or None when absent.

    """
    if not output.HasField('custom'):
        return None
    if version is SensrVersion.V31:
        return output.custom
    legacy = CustomMessageV30()
    legacy.ParseFromString(output.custom.SerializeToString())
    return legacy


# Print fields that hold their default (0, '', false, first enum value, empty list) too:
# protobuf 5.26 renamed the option.
_PRINT_DEFAULTS = {
    ('always_print_fields_with_no_presence'
     if 'always_print_fields_with_no_presence' in inspect.signature(
         json_format.MessageToDict).parameters
     else 'including_default_value_fields'): True,
}


def to_dict(message: Message) -> dict[str, Any]:
    """Return a message as a JSON-ready dict with the .proto field names.

    Every field is there, zeros included (proto3 leaves fields at their default out of
    JSON: ``"points": [{}, {"x": 5.0}]`` for (0, 0) and (5, 0)), so a consumer need not
    know proto3's defaults. Sub-messages that are not set stay out.
    """
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     **_PRINT_DEFAULTS)
