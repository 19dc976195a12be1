# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The clouds the benchmarks write and send, and how a received cloud is told apart.

Synthetic PointCloud2 messages (the writers alone, the recorder mode's publisher), the
clouds the bridge publishes for the simulator's frames (the compression benchmark, the
bridge and e2e modes' expectations), and the pairing of received clouds with the
simulator frames they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
import zlib

import numpy as np

if TYPE_CHECKING:
    from sensr_bridge.sim.server import Simulator

SENSR_POINTS = 921_512
CLOUD_TOPIC = '/sensr/points'
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
# Bytes right after a cloud's header stamp (frame id, fields, first points): they tell which
# simulator frame it is, and a bag reader gets them without reading the whole cloud.
ID_WINDOW = slice(12, 12 + 4096)


def pointcloud2_cdr(points: int, stamp_ns: int = 0, seed: int = 0) -> bytes:
    """Serialize a PointCloud2 with x, y, z, intensity float32 fields using rosbags.

    Args:
        points: Number of points (one row).
        stamp_ns: Header stamp in nanoseconds.
        seed: Seed of the random coordinates.

    Returns:
        The CDR bytes.

    """
    # Here, not at the top: the benchmark's listener process never builds a cloud.
    from sensr_bridge.bag.typedefs import typestore

    store = typestore()
    cloud = store.types[CLOUD_TYPE]
    field = store.types['sensor_msgs/msg/PointField']
    header = store.types['std_msgs/msg/Header']
    stamp = store.types['builtin_interfaces/msg/Time']
    data = np.random.default_rng(seed).random((points, 4), dtype=np.float32)
    msg = cloud(
        header=header(stamp=stamp(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                      frame_id='sensr'),
        height=1, width=points,
        fields=[field(name=name, offset=4 * i, datatype=field.FLOAT32, count=1)
                for i, name in enumerate(('x', 'y', 'z', 'intensity'))],
        is_bigendian=False, point_step=16, row_step=16 * points,
        data=data.view(np.uint8).reshape(-1), is_dense=True,
    )
    return bytes(store.serialize_cdr(msg, CLOUD_TYPE))


def simulator_clouds(points: int, frames: int) -> list[bytes]:
    """The clouds the bridge publishes for the simulator's first ``frames`` frames."""
    from sensr_bridge.sim.config import SimulatorConfig
    from sensr_bridge.sim.server import Simulator

    return decoded_clouds(Simulator(SimulatorConfig(points=points, frames_precomputed=frames)))


def decoded_clouds(sim: Simulator) -> list[bytes]:
    """Decode every precomputed frame of ``sim`` as the bridge does (default parameters)."""
    from sensr_bridge.sensr import decode, points

    decoder = decode.InlineDecoder(points.CloudOptions(points.MERGED, True, frozenset()),
                                   'sensr', lambda _r: None)
    try:
        return [bytes(decoder.decode(slot, sim.expected_point_result(slot), 0, 0).clouds[0][1])
                for slot in range(sim.config.frames_precomputed)]
    finally:
        decoder.close(1.0)


@dataclass
class Expected:
    """What the bridge must publish for each precomputed simulator frame."""

    clouds: list[bytes]
    ids: dict[int, int]  # CRC of a cloud's ID_WINDOW -> slot

    @classmethod
    def of(cls, sim: Simulator) -> Expected:
        """Decode every precomputed frame as the bridge does (default parameters)."""
        clouds = decoded_clouds(sim)
        ids = {zlib.crc32(c[ID_WINDOW]): i for i, c in enumerate(clouds)}
        if len(ids) < len(clouds):
            msg = 'simulator frames share their first points: the benchmark cannot tell them apart'
            raise RuntimeError(msg)
        return cls(clouds, ids)

    def same(self, slot: int, data: bytes) -> bool:
        """Whether ``data`` equals the expected cloud of ``slot``, header stamp aside."""
        want = self.clouds[slot]
        return len(data) == len(want) and data[:4] == want[:4] and data[12:] == want[12:]


def match_sends(records: list[tuple[int, int, int]], sent: dict[int, int],
                expected: Expected) -> list[tuple[int, int]]:
    """Pair each received cloud with the simulator frame it came from.

    A cloud's content tells its frame modulo the precomputed frame count; the frame is the
    latest one of that residue sent before the cloud's stamp and after the previous match,
    which is certain while the pipeline lags less than ``frames_precomputed`` frames.

    Returns:
        ``(seq, receive_ns)`` per identified cloud.

    """
    period = len(expected.clouds)
    order = sorted(sent.items())
    pairs = []
    last = -1
    for recv_ns, stamp_ns, cloud_id in records:
        slot = expected.ids.get(cloud_id)
        if slot is None:
            continue
        limit = stamp_ns or recv_ns
        best = None
        for seq, send_ns in order:
            if send_ns > limit:
                break
            if seq > last and seq % period == slot:
                best = seq
        if best is not None:
            pairs.append((best, recv_ns))
            last = best
    return pairs
