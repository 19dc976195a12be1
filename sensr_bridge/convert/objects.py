# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""SENSR's objects as data: plain rows, the ``objects/json`` text and ``Detection3DArray``.

Each ``sensr_proto.Object`` of a frame (``StreamMessage.objects``, then
``StreamMessage.static_objects``) becomes one row, a dict of plain values:

=====================  ======================================================================
key                    value
=====================  ======================================================================
id                     SENSR track id (int)
source                 ``'objects'`` or ``'static_objects'`` (the StreamMessage list)
label, label_id        label name (``LABEL_CAR``; ``UNKNOWN_<n>`` for a newer SENSR) and number
probability            ``Object.confidence``, 0..1
tracking_status(_id)   name (``TRACKING``, ``VALIDATING``...) and number
tracking_reliable      tracking_status is ``TRACKING`` (SENSR's recommended value)
is_static              ``Object.is_static``
centre                 box centre {x, y, z}: SENSR gives the bottom centre, z is raised by
                       half the height (:func:`sensr_bridge.convert.outputs.box_centre`)
size                   box extents {x, y, z} (length, width, height)
yaw, yaw_rate          rad about +Z, rad/s
velocity               {x, y, z}, m/s
zone_ids               zones the object is in
history                past positions [{x, y, z, stamp_ns}], oldest first (rows with detail)
prediction             predicted positions [{x, y, z}] (rows with detail)
=====================  ======================================================================

Every key is always present, zeros and empty lists included. Metres, radians, frame of
the bridge's ``frame_id`` (SENSR's world frame). Numbers are SENSR's float32 values as
the shortest decimals that read back as the same float32 (:func:`f32`). An object with
no box, a box with a non-finite value or a negative size, or a non-finite probability,
velocity, yaw rate, history or prediction point is skipped and counted by reason
(:data:`SKIP_REASONS`).

These functions need no node: :func:`frame_rows` takes a parsed ``StreamMessage``,
:func:`frame_json` and :func:`detection_array` turn rows into what the bridge publishes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import json
import math
import struct
from typing import TYPE_CHECKING, Any

from geometry_msgs.msg import Pose, Vector3
from std_msgs.msg import Header

from sensr_bridge.convert import outputs
from sensr_bridge.sensr import protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from google.protobuf.message import Message

SOURCES = ('objects', 'static_objects')
"""The StreamMessage lists whose objects become rows, in this order."""

SKIP_REASONS = ('missing_bbox', 'bad_bbox', 'non_finite')
"""Why an object is skipped: no box; a box with a non-finite value or a negative size;
a non-finite probability, velocity, yaw rate, history or prediction value."""

_TRACKING = protocol.TRACKING_STATUS.values_by_name['TRACKING'].number


class BadObject(ValueError):
    """An object that cannot be turned into a row.

    Attributes:
        reason: One of :data:`SKIP_REASONS`.

    """

    def __init__(self, reason: str, text: str) -> None:
        """Initialize with the reason and a sentence naming the object."""
        super().__init__(text)
        self.reason = reason


@dataclass
class ObjectFrame:
    """The rows of one frame and the objects skipped.

    Attributes:
        rows: One dict per valid object, in frame order.
        skipped: Objects skipped, by reason.
        first_error: What was wrong with the first object skipped, by reason.

    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)


def has_objects(stream: Message) -> bool:
    """Tell whether a StreamMessage carries an object list (possibly empty)."""
    return bool(stream.has_objects or stream.objects or stream.static_objects)


_FLOAT32 = struct.Struct('<f')
_pack, _unpack = _FLOAT32.pack, _FLOAT32.unpack


def f32(value: float) -> float:
    """Return the shortest decimal that reads back as the same float32, as a float.

    SENSR's numbers are float32; printed as doubles they carry noise digits
    (``0.8299999833106995`` for 0.83). The value returned prints as ``0.83`` and converts
    back to the same float32, as protobuf's JSON printing does for float fields. (``%g``
    drops trailing zeros, so 7 significant digits also give the 6-digit and shorter
    forms.)
    """
    try:
        single = _unpack(_pack(value))[0]
        short = float(f'{single:.7g}')
        if _unpack(_pack(short))[0] == single:
            return short
        short = float(f'{single:.8g}')
        if _unpack(_pack(short))[0] == single:
            return short
    except OverflowError:  # beyond float32 (a computed centre of a huge box)
        return value
    return float(f'{single:.9g}')


def _xyz(v: Any) -> dict[str, float]:
    return {'x': f32(v.x), 'y': f32(v.y), 'z': f32(v.z)}


def object_row(obj: Message, source: str = 'objects', *, detail: bool = True) -> dict[str, Any]:
    """Turn one ``sensr_proto.Object`` into a row (see the module docstring).

    Args:
        obj: The object.
        source: The StreamMessage list it came from.
        detail: Include history and prediction (the track log leaves them out).

    Returns:
        The row.

    Raises:
        BadObject: The object has no box, or a malformed or non-finite value.

    """
    if not obj.HasField('bbox'):
        msg = f'object {obj.id} has no bounding box'
        raise BadObject('missing_bbox', msg)
    box = obj.bbox
    pos, size = box.position, box.size
    # A sum of float32 values cannot overflow a double: it is finite iff every term is.
    if not math.isfinite(pos.x + pos.y + pos.z + size.x + size.y + size.z + box.yaw) or min(
            size.x, size.y, size.z) < 0.0:
        msg = (f'object {obj.id} has a malformed box: position ({pos.x}, {pos.y}, {pos.z}), '
               f'size ({size.x}, {size.y}, {size.z}), yaw {box.yaw}')
        raise BadObject('bad_bbox', msg)
    vel = obj.velocity
    if not math.isfinite(obj.confidence + vel.x + vel.y + vel.z + obj.yaw_rate):
        msg = (f'object {obj.id} has a non-finite probability, velocity or yaw rate '
               f'({obj.confidence}, ({vel.x}, {vel.y}, {vel.z}), {obj.yaw_rate})')
        raise BadObject('non_finite', msg)
    cx, cy, cz = outputs.box_centre(obj)
    row: dict[str, Any] = {
        'id': obj.id,
        'source': source,
        'label': protocol.enum_name(protocol.LABEL_TYPE, obj.label),
        'label_id': obj.label,
        'probability': f32(obj.confidence),
        'tracking_status': protocol.enum_name(protocol.TRACKING_STATUS, obj.tracking_status),
        'tracking_status_id': obj.tracking_status,
        'tracking_reliable': obj.tracking_status == _TRACKING,
        'is_static': obj.is_static,
        'centre': {'x': f32(cx), 'y': f32(cy), 'z': f32(cz)},
        'size': _xyz(size),
        'yaw': f32(box.yaw),
        'yaw_rate': f32(obj.yaw_rate),
        'velocity': _xyz(vel),
        'zone_ids': list(obj.zone_ids),
    }
    if detail:
        states, positions = obj.history.states, obj.prediction.positions
        if not math.isfinite(sum(s.position.x + s.position.y + s.position.z for s in states)
                             + sum(p.x + p.y + p.z for p in positions)):
            msg = f'object {obj.id} has a non-finite history or prediction point'
            raise BadObject('non_finite', msg)
        history = [{**_xyz(s.position), 'stamp_ns': protocol.timestamp_ns(s.timestamp)}
                   for s in states]
        prediction = [_xyz(p) for p in positions]
        row['history'] = history
        row['prediction'] = prediction
    return row


def frame_rows(stream: Message, *, detail: bool = True) -> ObjectFrame:
    """Turn every object of a StreamMessage into a row; count the ones skipped.

    Args:
        stream: A parsed ``sensr_proto.StreamMessage``.
        detail: Include history and prediction in the rows.

    Returns:
        Rows of ``objects`` then ``static_objects``, and the objects skipped by reason.

    """
    frame = ObjectFrame()
    for source in SOURCES:
        for obj in getattr(stream, source):
            try:
                frame.rows.append(object_row(obj, source, detail=detail))
            except BadObject as exc:
                frame.skipped[exc.reason] += 1
                frame.first_error.setdefault(exc.reason, str(exc))
    return frame


def frame_json(frame: ObjectFrame, stamp_ns: int, frame_id: str) -> str:
    """Return the ``objects/json`` text of one frame.

    Args:
        frame: Rows (with detail) and skip counts.
        stamp_ns: The frame's stamp, nanoseconds since the epoch.
        frame_id: Frame of every position.

    Returns:
        Compact JSON: ``stamp_ns``, ``frame_id``, ``objects`` (the rows) and ``skipped``
        (a count for every reason of :data:`SKIP_REASONS`, zeros included).

    """
    data = {'stamp_ns': stamp_ns, 'frame_id': frame_id, 'objects': frame.rows,
            'skipped': {reason: frame.skipped[reason] for reason in SKIP_REASONS}}
    return json.dumps(data, separators=(',', ':'), allow_nan=False)


def vision_msgs() -> ModuleType | None:
    """Return the ``vision_msgs.msg`` module, or None where vision_msgs is not installed."""
    try:
        from vision_msgs import msg
    except ImportError:
        return None
    return msg


def box_pose(row: dict[str, Any]) -> Pose:
    """Return the pose of a row's box: its centre and its yaw as a quaternion."""
    pose = Pose()
    centre = row['centre']
    pose.position.x, pose.position.y, pose.position.z = centre['x'], centre['y'], centre['z']
    q = pose.orientation
    q.x, q.y, q.z, q.w = outputs.yaw_quaternion(row['yaw'])
    return pose


def detection_array(rows: Iterable[dict[str, Any]], stamp_ns: int, frame_id: str,
                    msgs: Any) -> Any:
    """Build a ``vision_msgs/Detection3DArray`` from rows.

    Each row gives one Detection3D: ``id`` the track id (as a string), ``bbox`` the box
    (centre pose with the yaw quaternion, size), one ``results`` entry with
    ``hypothesis.class_id`` the label name, ``hypothesis.score`` the probability and
    ``pose.pose`` the box pose (covariance zero: SENSR gives none). Velocity, tracking
    status, history and prediction have no place in Detection3D (``objects/json`` has
    them).

    Args:
        rows: Rows of :func:`object_row`.
        stamp_ns: Header stamp of the array and of each detection.
        frame_id: Header frame id.
        msgs: The message classes: the ``vision_msgs.msg`` module (:func:`vision_msgs`)
            or anything with ``Detection3DArray``, ``Detection3D`` and
            ``ObjectHypothesisWithPose`` of the same fields.

    Returns:
        The Detection3DArray.

    """
    header = Header(stamp=outputs.stamp_msg(stamp_ns), frame_id=frame_id)
    detections = []
    for row in rows:
        det = msgs.Detection3D()
        det.header = header
        det.id = str(row['id'])
        det.bbox.center = box_pose(row)
        size = row['size']
        det.bbox.size = Vector3(x=size['x'], y=size['y'], z=size['z'])
        result = msgs.ObjectHypothesisWithPose()
        result.hypothesis.class_id = row['label']
        result.hypothesis.score = row['probability']
        result.pose.pose = box_pose(row)
        det.results = [result]
        detections.append(det)
    array = msgs.Detection3DArray()
    array.header = header
    array.detections = detections
    return array
