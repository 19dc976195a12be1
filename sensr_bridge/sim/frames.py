# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The messages the simulator sends: each frame's PointResult and OutputMessages, events.

Frame ``seq`` carries precomputed frame ``seq % frames_precomputed``. Its PointResult is
the precomputed serialization followed by a separately encoded ``uid`` field
(``sim:<seq>``): protobuf merges concatenated messages, so nothing is re-serialized or
copied per send and :meth:`Frames.point_result` rebuilds any frame bit for bit. The
frame's OutputMessage is built per send from a precomputed template; its ``timestamp``
and ``stream.first_cloud_arrival_timestamp`` are the frame's send time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sensr_bridge.errors import ConfigError
from sensr_bridge.sensr import protocol, wire
from sensr_bridge.sim.scene import ALGO_NODE, HISTORY_STEP_S, LIDARS, Scene, set_vector

if TYPE_CHECKING:
    from sensr_bridge.sim.config import SimulatorConfig

_ZONE_EVENT_TYPES = tuple(
    v.number for v in protocol.ZONE_EVENT_TYPE.values if v.name != 'NONE')


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def varint_field(number: int, value: int) -> bytes:
    """Encode a protobuf varint field."""
    return _varint(number << 3 | wire.VARINT) + _varint(value)


def bytes_field(number: int, payload: bytes) -> bytes:
    """Encode a protobuf length-delimited field."""
    return _varint(number << 3 | wire.LENGTH_DELIMITED) + _varint(len(payload)) + payload


def uid_field(uid: str) -> bytes:
    """Encode ``PointResult.uid`` (field 201) exactly as protobuf serializes it."""
    return bytes_field(201, uid.encode())


class Frames:
    """The content of every frame: precomputed per slot at construction, stamped per send.

    Attributes:
        scene: The site the frames show.

    Args:
        config: The simulator's settings.

    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._cfg = config
        scene = Scene(config)
        self.scene = scene
        self._states = [scene.state(slot) for slot in range(config.frames_precomputed)]
        self._bodies = [memoryview(scene.point_body(slot, state))
                        for slot, state in enumerate(self._states)]
        self._templates = [scene.stream_template(slot, state)
                           for slot, state in enumerate(self._states)]
        node = protocol.SystemHealth.Node(status=protocol.NODE_STATUS.values_by_name['OK'].number)
        for lidar in LIDARS:
            node.sensors[lidar] = protocol.SENSOR_STATUS.values_by_name['SENSOR_ALIVE'].number
        self._health = protocol.SystemHealth(master=protocol.HEALTH_STATUS.values_by_name['OK']
                                             .number)
        self._health.nodes[ALGO_NODE].CopyFrom(node)

    def point_parts(self, seq: int) -> tuple[memoryview, bytes]:
        """Return the PointResult of frame ``seq`` as sent: the precomputed body, its uid."""
        return self._bodies[seq % self._cfg.frames_precomputed], uid_field(f'sim:{seq}')

    def point_result(self, seq: int) -> bytes:
        """Return the serialized PointResult of frame ``seq`` (uid ``sim:<seq>``)."""
        body, uid = self.point_parts(seq)
        return body.tobytes() + uid

    def stream_message(self, seq: int, now_ns: int) -> bytes:
        """Return the OutputMessage with the stream of frame ``seq``, sent at ``now_ns``.

        Its objects, with zones and health when due.
        """
        cfg = self._cfg
        message = protocol.OutputMessage.FromString(
            self._templates[seq % cfg.frames_precomputed])
        message.timestamp.FromNanoseconds(now_ns)
        stream = message.stream
        stream.first_cloud_arrival_timestamp.FromNanoseconds(now_ns)
        step_ns = round(HISTORY_STEP_S * 1e9)
        for obj in stream.objects:
            obj.last_observed_timestamp.FromNanoseconds(now_ns)
            states = obj.history.states
            for index, state in enumerate(states):
                state.timestamp.FromNanoseconds(now_ns - (len(states) - index) * step_ns)
        if cfg.every(seq, cfg.zones_interval_s):
            stream.zones.extend(self.scene.zones)
            stream.has_zones = True
        if cfg.every(seq, cfg.health_interval_s):
            stream.health.CopyFrom(self._health)
        return message.SerializeToString()

    def event_message(self, seq: int, now_ns: int) -> bytes:
        """Return the OutputMessage of events sent with frame ``seq`` (``event_interval_s``).

        A zone event per object in a zone, their type cycling with each event message,
        and one losing event, of an object chosen the same way.
        """
        cfg = self._cfg
        state = self._states[seq % cfg.frames_precomputed]
        ids = self.scene.ids
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(now_ns)
        event_number = seq // cfg.frames_per(cfg.event_interval_s)
        for i, zone_ids in enumerate(state.zone_ids):
            for zone_id in zone_ids:
                zone_event = message.event.zone.add(
                    id=zone_id, type=_ZONE_EVENT_TYPES[event_number % len(_ZONE_EVENT_TYPES)])
                zone_event.timestamp.FromNanoseconds(now_ns)
                zone_event.object.id = int(ids[i])
                set_vector(zone_event.object.position, state.x[i], state.y[i])
                zone_event.object.heading = float(state.yaw[i])
                set_vector(zone_event.object.velocity, state.vx[i], state.vy[i])
        lost = event_number % len(ids)
        losing = message.event.losing.add(id=int(ids[lost]), heading=float(state.yaw[lost]))
        losing.timestamp.FromNanoseconds(now_ns)
        set_vector(losing.position, state.x[lost], state.y[lost])
        return message.SerializeToString()

    def custom_message(self, seq: int, now_ns: int) -> bytes:
        """Return the OutputMessage with ``custom`` sent with frame ``seq``."""
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(now_ns)
        # Background learning as SENSR reports it after a start: complete within a minute.
        message.custom.bg_learning_progress = min(1.0, seq / (60.0 * self._cfg.rate_hz))
        return message.SerializeToString()


def overflow_event() -> bytes:
    """Return the OutputMessage SENSR sends to a client whose buffer overflowed."""
    message = protocol.OutputMessage()
    message.timestamp.FromNanoseconds(time.time_ns())
    message.event.health.master = protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW
    return message.SerializeToString()


def zone_event(zone_id: int, event_type: str, object_id: int) -> bytes:
    """Return an OutputMessage with one zone event, stamped now.

    Args:
        zone_id: Zone id.
        event_type: A ``ZoneEvent.Type`` name: ENTRY, EXIT, LOITERING, EXCEEDS_SPEED.
        object_id: Id of the object the event is about.

    Returns:
        The serialized message.

    Raises:
        ConfigError: An unknown event type.

    """
    if event_type not in protocol.ZONE_EVENT_TYPE.values_by_name:
        msg = f'unknown zone event type {event_type!r}'
        raise ConfigError(msg)
    message = protocol.OutputMessage()
    message.timestamp.FromNanoseconds(time.time_ns())
    event = message.event.zone.add(
        id=zone_id, type=protocol.ZONE_EVENT_TYPE.values_by_name[event_type].number)
    event.timestamp.CopyFrom(message.timestamp)
    event.object.id = object_id
    return message.SerializeToString()
