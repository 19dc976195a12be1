# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Conversions of SENSR perception output (port 5050) into ROS messages.

Geometry follows REP-103 (metres, radians, right-handed, Z up). SENSR gives a box by its
bottom-centre; RViz cubes are placed by their centre, so z is raised by half the height.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sensr_bridge.convert import cloud
from sensr_bridge.sensr import protocol

if TYPE_CHECKING:
    from google.protobuf.message import Message

_LABEL_COLOURS = {
    'LABEL_CAR': (0.1, 0.5, 1.0), 'LABEL_PEDESTRIAN': (1.0, 0.8, 0.1),
    'LABEL_CYCLIST': (0.2, 0.9, 0.3), 'LABEL_MISC': (0.8, 0.3, 0.9),
}
_DEFAULT_COLOUR = (0.7, 0.7, 0.7)


def stamp_msg(stamp_ns: int) -> Time:
    """Return a ``builtin_interfaces/Time`` for nanoseconds since the epoch."""
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Return the (x, y, z, w) quaternion of a rotation by ``yaw`` about +Z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def box_centre(obj: Message) -> tuple[float, float, float]:
    """Return the centre of an object's box (SENSR gives the bottom centre)."""
    pos, size = obj.bbox.position, obj.bbox.size
    return pos.x, pos.y, pos.z + size.z / 2.0


def object_markers(objects: list[Message], stamp_ns: int, frame_id: str) -> MarkerArray:
    """Build RViz markers for the objects of one frame.

    The array starts with DELETEALL so tracks that vanished are removed; each object
    gets a box (CUBE), a text (id and label) and, when moving, a velocity arrow.

    Args:
        objects: ``sensr_proto.Object`` messages.
        stamp_ns: Header stamp.
        frame_id: Header frame id.

    Returns:
        The marker array.

    """
    stamp = stamp_msg(stamp_ns)
    markers = [Marker(action=Marker.DELETEALL, ns='sensr')]
    for obj in objects:
        label = protocol.enum_name(protocol.LABEL_TYPE, obj.label)
        r, g, b = _LABEL_COLOURS.get(label, _DEFAULT_COLOUR)
        cx, cy, cz = box_centre(obj)
        qx, qy, qz, qw = yaw_quaternion(obj.bbox.yaw)
        box = Marker(ns='sensr/boxes', id=obj.id, type=Marker.CUBE, action=Marker.ADD,
                     color=ColorRGBA(r=r, g=g, b=b, a=0.5), lifetime=Duration(sec=1))
        box.header.stamp, box.header.frame_id = stamp, frame_id
        box.pose.position.x, box.pose.position.y, box.pose.position.z = cx, cy, cz
        box.pose.orientation.x, box.pose.orientation.y = qx, qy
        box.pose.orientation.z, box.pose.orientation.w = qz, qw
        size = obj.bbox.size
        box.scale.x, box.scale.y, box.scale.z = (max(size.x, 1e-3), max(size.y, 1e-3),
                                                 max(size.z, 1e-3))
        text = Marker(ns='sensr/labels', id=obj.id, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, text=f'{obj.id} {label.removeprefix("LABEL_").lower()}',
                      color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), lifetime=Duration(sec=1))
        text.header = box.header
        text.pose.position.x, text.pose.position.y = cx, cy
        text.pose.position.z = cz + size.z / 2.0 + 0.5
        text.pose.orientation.w = 1.0
        text.scale.z = 0.6
        markers += [box, text]
        v = obj.velocity
        if math.hypot(v.x, v.y, v.z) > 0.05:
            arrow = Marker(ns='sensr/velocities', id=obj.id, type=Marker.ARROW,
                           action=Marker.ADD, color=ColorRGBA(r=r, g=g, b=b, a=1.0),
                           lifetime=Duration(sec=1))
            arrow.header = box.header
            arrow.pose.orientation.w = 1.0
            arrow.points = [Point(x=cx, y=cy, z=cz), Point(x=cx + v.x, y=cy + v.y, z=cz + v.z)]
            arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.15, 0.3, 0.3
            markers.append(arrow)
    return MarkerArray(markers=markers)


def zone_markers(zones: list[Message], stamp_ns: int, frame_id: str) -> MarkerArray:
    """Build outline markers (a closed LINE_LIST prism) for SENSR zones."""
    stamp = stamp_msg(stamp_ns)
    markers = [Marker(action=Marker.DELETEALL, ns='sensr/zones')]
    for zone in zones:
        m = Marker(ns='sensr/zones', id=zone.id, type=Marker.LINE_LIST, action=Marker.ADD,
                   color=ColorRGBA(r=1.0, g=0.4, b=0.0, a=0.9))
        m.header.stamp, m.header.frame_id = stamp, frame_id
        m.pose.orientation.w = 1.0
        m.scale.x = 0.05
        pts = list(zone.pbox.points)
        lo, hi = zone.pbox.min_z, zone.pbox.max_z
        for a, b in zip(pts, pts[1:] + pts[:1], strict=True):
            for z in (lo, hi):
                m.points += [Point(x=a.x, y=a.y, z=z), Point(x=b.x, y=b.y, z=z)]
            m.points += [Point(x=a.x, y=a.y, z=lo), Point(x=a.x, y=a.y, z=hi)]
        markers.append(m)
    return MarkerArray(markers=markers)


def object_points(objects: list[Message]) -> np.ndarray:
    """Pack the points SENSR attached to objects into the ``XYZI_OBJECT`` layout.

    Objects whose point or intensity bytes are inconsistent are skipped (the caller
    counts them through the returned ``skipped`` attribute of the array's metadata).

    Args:
        objects: ``sensr_proto.Object`` messages.

    Returns:
        A structured array with x, y, z, intensity, object_id and label per point.

    """
    dtype = cloud.XYZI_OBJECT.numpy_dtype()
    parts = []
    for obj in objects:
        n, rest = divmod(len(obj.points), 12)
        if rest or not n or (obj.intensities and len(obj.intensities) != 4 * n):
            continue
        part = np.zeros(n, dtype)
        xyz = np.frombuffer(obj.points, '<f4').reshape(n, 3)
        part['x'], part['y'], part['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        if obj.intensities:
            part['intensity'] = np.frombuffer(obj.intensities, '<f4')
        part['object_id'] = obj.id
        part['label'] = obj.label & 0xFF
        parts.append(part)
    # Not np.concatenate: NumPy >= 1.23 packs structured dtypes when concatenating (21-byte
    # points instead of point_step 24), and with dtype= it leaves the padding uninitialized.
    out = np.zeros(sum(len(p) for p in parts), dtype)
    row = 0
    for part in parts:
        out[row:row + len(part)] = part
        row += len(part)
    return out


def bad_object_points(objects: list[Message]) -> int:
    """Count objects whose point/intensity byte counts are inconsistent."""
    bad = 0
    for obj in objects:
        n, rest = divmod(len(obj.points), 12)
        if rest or (obj.intensities and len(obj.intensities) != 4 * n):
            bad += 1
    return bad


def to_json(message: Message, **extra: Any) -> str:
    """Return a protobuf message as compact JSON with .proto field names and enum names."""
    data = protocol.to_dict(message)
    data.update(extra)
    return json.dumps(data, separators=(',', ':'), sort_keys=True)


def zones_json(zones: list[Message]) -> str:
    """Return SENSR zone configurations as a JSON list."""
    return json.dumps([protocol.to_dict(z) for z in zones], separators=(',', ':'))
