# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark's own child processes: a raw cloud subscriber and a cloud publisher.

They run as ``python -m sensr_bridge.bench _listen|_publish`` and report to the
benchmark in JSON lines on stdout (``{"event": "started"}``, ``matched``, ``progress``,
``done``).
"""

from __future__ import annotations

import argparse
from contextlib import suppress
import json
from pathlib import Path
import signal
import struct
import threading
import time
from typing import Any
import zlib

from sensr_bridge.bench.clouds import CLOUD_TOPIC, ID_WINDOW, pointcloud2_cdr
from sensr_bridge.convert import cdr
from sensr_bridge.process import environment

CHILD_ROLES: dict[str, environment.Role] = {'_listen': 'receiver', '_publish': 'publisher'}
"""The environment role of the benchmark's own child processes, by mode."""


def _child_ros(args: argparse.Namespace) -> tuple[Any, Any, threading.Event]:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = rclpy.create_node(f'sensr_bench_{args.role}')
    return rclpy, node, stop


def _qos(reliability: str, depth: int) -> Any:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                      else ReliabilityPolicy.BEST_EFFORT)


def _say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def listen_main(args: argparse.Namespace) -> int:
    """Subscribe raw to the cloud topic; log receive time, stamp and ID_WINDOW CRC per cloud."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    rclpy, node, stop = _child_ros(args)
    records: list[tuple[int, int, int]] = []
    samples = Path(args.samples) if args.samples else None

    def got(data: bytes) -> None:
        now = time.time_ns()
        records.append((now, cdr.header_stamp_ns(data) or 0, zlib.crc32(data[ID_WINDOW])))
        if samples is not None and len(records) % args.sample_every == 1:
            (samples / f'{len(records) - 1}.cdr').write_bytes(data)

    def diagnostics(msg: DiagnosticArray) -> None:
        # The bridge reports its cloud subscribers: once it sees this one, nothing is missed.
        for status in msg.status:
            if status.name.endswith('pipeline') and any(
                    kv.key.startswith('subscribers_') and int(kv.value) > 0
                    for kv in status.values):
                _say(event='matched')

    node.create_subscription(PointCloud2, args.topic, got, _qos(args.reliability, 10), raw=True)
    node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    _say(event='started')
    next_report = time.monotonic() + 1.0
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() >= next_report:
            next_report += 1.0
            _say(event='progress', received=len(records))
    Path(args.out).write_text(json.dumps({'records': records}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def publish_main(args: argparse.Namespace) -> int:
    """Publish ``count`` SENSR-sized clouds at ``rate`` once a subscriber has matched."""
    from sensor_msgs.msg import PointCloud2

    rclpy, node, stop = _child_ros(args)
    message = bytearray(pointcloud2_cdr(args.points))
    pub = node.create_publisher(PointCloud2, CLOUD_TOPIC, _qos(args.reliability, 10))
    _say(event='started')
    while not stop.is_set() and pub.get_subscription_count() < 1:
        stop.wait(0.02)
    _say(event='matched')
    period = 1.0 / args.rate
    start = time.monotonic()
    published = late = 0
    while published < args.count and not stop.is_set():
        delay = start + published * period - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -period:
            late += 1
        struct.pack_into('<iI', message, 4, *divmod(time.time_ns(), 1_000_000_000))
        pub.publish(bytes(message))
        published += 1
        if published % max(1, int(args.rate)) == 0:
            _say(event='progress', published=published)
    with suppress(AttributeError):
        pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
    _say(event='done', published=published, late=late,
         seconds=round(time.monotonic() - start, 3))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0
