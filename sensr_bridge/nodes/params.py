# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The parameters of the bridge and the recorder: each declared once, here.

Every entry of :data:`BRIDGE` and :data:`RECORDER` holds what every place that names the
parameter needs: the nodes declare them (:func:`sensr_bridge.nodes.declaration.declare_parameters`:
descriptor, range, read-only) and check their choices (:func:`check_choices`);
``scripts/gen_config.py`` writes ``config/bridge.yaml`` and ``config/recorder.yaml`` from
them; :mod:`sensr_bridge.launching.arguments` declares a launch argument for each entry
with ``launch`` and converts its value; ``record`` (:mod:`sensr_bridge.cli.record`) has an
option for each entry with an ``option``.

No rclpy here: the launch plans and ``record``'s parser read the tables without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sensr_bridge.bag.base import COMPRESSIONS, STORAGE_IDS
from sensr_bridge.bag.clips import CLIP_MODES, parse_event_rules
from sensr_bridge.bag.filters import parse_intervals
from sensr_bridge.errors import ConfigError
from sensr_bridge.sensr import points, protocol

DEFAULT_NAMESPACE = 'sensr'
"""Namespace of the nodes in the launch files, ``record`` and the composed process."""
BRIDGE_NAME = 'sensr_bridge'
"""Node name of the bridge."""
RECORDER_NAME = 'sensr_recorder'
"""Node name of the recorder."""

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
DAY_S = 86400.0
PORT = (0, 65535)
POSITIVE_INT32 = (1, INT32_MAX)
POSITIVE_INT64 = (1, INT64_MAX)
COUNT = (0, INT64_MAX)
SECONDS = (0.0, DAY_S)
PERIOD = (0.01, DAY_S)


@dataclass(frozen=True)
class Param:
    """One node parameter.

    Attributes:
        name: Parameter name.
        default: Default value; its type is the parameter's type.
        description: What it does (its descriptor, and its comment in ``config/*.yaml``).
        choices: The values a string parameter accepts (empty: any).
        range: Inclusive bounds of a number (None: any).
        writable: Whether it may change while the node runs (otherwise read-only).
        launch: Whether the launch files have an argument of the same name for it
            (``record.launch.py`` for both nodes', ``bridge.launch.py`` for the bridge's).
        option: The ``record`` option that sets it, e.g. ``--split-duration`` ('': none).
        metavar: How ``record --help`` shows the option's value ('': from its name).
        help: Short help of its launch argument and option ('': the description).
        path: A file: a launch argument must name one that exists.
        check: Checks a list value given to a launch argument:
            ``check(entries, what)`` raises ConfigError naming ``what``.

    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    writable: bool = False
    launch: bool = False
    option: str = ''
    metavar: str = ''
    help: str = ''
    path: bool = False
    check: Callable[[Sequence[str], str], object] | None = None

    @property
    def short_help(self) -> str:
        """Help of the launch argument and ``record`` option: lower case, no final period."""
        text = (self.help or self.description).rstrip('.')
        # 'Port of ...' reads 'port of ...' inside a sentence; 'SENSR master' stays.
        return text[0].lower() + text[1:] if text[:2].istitle() else text

    @property
    def default_text(self) -> str:
        """The default as a launch argument would give it: lists space-separated, '' quoted."""
        value = self.default
        if isinstance(value, list):
            text = ' '.join(str(item) for item in value)
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        return text if text.strip() else "''"


def _events(entries: Sequence[str], what: str) -> object:
    return parse_event_rules(entries, name=what)


BRIDGE: tuple[Param, ...] = (
    Param('host', '127.0.0.1', 'SENSR master host name or address.', launch=True,
          option='--host'),
    Param('output_port', protocol.OUTPUT_PORT,
          'Port of the output stream (OutputMessage); 0 = off.', range=PORT, launch=True,
          option='--output-port'),
    Param('point_port', protocol.POINT_PORT,
          'Port of the point stream (PointResult); 0 = off.', range=PORT, launch=True,
          option='--point-port'),
    Param('use_tls', False, 'Connect with wss:// (SENSR security.enable_ssl).'),
    Param('ca_file', '', 'CA certificate (sensr-ca.crt) that signed the SENSR server '
          'certificate.'),
    Param('tls_check_hostname', True, 'Check the server name against its certificate.'),
    Param('sensr_version', '3.1', "SENSR schema generation: '3.1' (3.1 and later) or '3.0'.",
          choices=('3.0', '3.1')),
    Param('frame_id', 'sensr', 'Frame id of every published message (SENSR world frame).'),
    Param('stamp_source', 'sensr',
          "'sensr': output topics stamped with OutputMessage.timestamp; 'receive': receive "
          'time. Clouds are always stamped with their receive time (PointResult has no '
          'timestamp).', choices=('sensr', 'receive')),
    Param('cloud_mode', points.MERGED,
          "'merged': one cloud per frame on points; 'per_type': points/ground, "
          'points/background, points/raw.', choices=(points.MERGED, points.PER_TYPE)),
    Param('cloud_type_field', True, 'Add the uint8 per-point SENSR cloud type to merged '
          'clouds.'),
    Param('cloud_types', [0], 'SENSR cloud types to publish (1 ground, 2 background, 3 raw); '
          '[0] = all.'),
    Param('publish_object_points', True, 'Publish object_points from Object.points (port '
          '5050).'),
    Param('publish_markers', True, 'Publish objects/markers and zones/markers for RViz.'),
    Param('publish_objects', True,
          'Publish every object of a frame on objects (vision_msgs/Detection3DArray, where '
          'vision_msgs is installed) and objects/json (all fields, as JSON).'),
    Param('publish_raw_output', True, 'Publish output_raw: every OutputMessage as its '
          'protobuf bytes.'),
    Param('qos_reliability', 'reliable', "'reliable' (REP-2003 default) or 'best_effort'.",
          choices=('reliable', 'best_effort')),
    Param('qos_depth', 5, 'History depth of the publishers (each 14.7 MB cloud is held per '
          'slot).', range=POSITIVE_INT32),
    Param('decode_workers', 0, 'Decode processes for point frames; 0 decodes on a thread '
          'in-process.', range=(0, 1024), option='--decode-workers',
          help='decode processes (0 = in-process)'),
    Param('max_pending_frames', 8,
          'Point frames waiting for decoding (memory bound: this x frame size); newer frames '
          'are dropped.', range=POSITIVE_INT32),
    Param('max_frame_bytes', 64 << 20, 'Largest websocket message accepted; larger are '
          'skipped.', range=(1024, INT64_MAX)),
    Param('output_queue_size', 64, 'Output frames waiting to be published; newer are '
          'dropped.', range=POSITIVE_INT32),
    Param('ping_interval', 2.0, 'Seconds between keep-alive pings (SENSR keeps dead '
          'connections).', range=SECONDS),
    Param('ping_timeout', 3.0, 'Seconds without a pong before reconnecting.', range=SECONDS),
    Param('stall_timeout', 5.0, 'Seconds without any data before reconnecting.',
          range=SECONDS),
    Param('reconnect_backoff_initial', 0.1, 'First reconnect delay, seconds.', range=PERIOD),
    Param('reconnect_backoff_max', 0.5,
          'Cap of the exponential reconnect delay, seconds: the longest wait between SENSR '
          'coming back and the reconnect.', range=PERIOD),
    Param('max_reconnects', 0, 'Failed attempts in a row before giving up; 0 = never give '
          'up.', range=COUNT),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.', range=PERIOD),
    Param('stats_log_period', 10.0, 'Seconds between statistics log lines; 0 = off.',
          range=SECONDS, writable=True),
    Param('drain_timeout', 1.5, 'Seconds allowed at shutdown to publish frames already '
          'received.', range=SECONDS),
    Param('stats_file', '', "Write the final statistics here as JSON at shutdown; '' = off."),
    Param('autostart', True, 'Configure and activate on start (run without a lifecycle '
          'manager).'),
)
"""Parameters of the bridge node."""

RECORDER: tuple[Param, ...] = (
    Param('output_dir', 'bags', 'Directory in which bags are created.', launch=True,
          option='--output-dir'),
    Param('bag_name', 'sensr_%Y%m%d_%H%M%S',
          'Bag directory name; strftime fields are filled with the start time.',
          option='--bag-name'),
    Param('storage', 'sqlite3', "'sqlite3' or 'mcap'.", choices=STORAGE_IDS, launch=True,
          option='--storage', help='bag storage'),
    Param('writer_backend', 'auto',
          "'auto' (rosbag2_py when importable), 'rosbag2_py', or 'python' (no ROS install "
          'needed).', choices=('auto', 'rosbag2_py', 'python'), option='--writer-backend'),
    Param('storage_preset', '',
          "sqlite3 pragma preset: '' (crash_safe), 'durable' (fsync per batch), "
          "'resilient', ...", launch=True, option='--storage-preset',
          help="sqlite3 pragma preset: '' (crash_safe), 'durable' (fsync per batch), "
               "'resilient'"),
    Param('storage_config_file', '', 'rosbag2 storage config YAML (write: pragmas: [...]).',
          launch=True, path=True,
          help='rosbag2 storage config YAML (write: pragmas: [...]), e.g. '
               'config/storage_durable.yaml'),
    Param('compression', 'none',
          "mcap chunk compression: 'none', 'zstd' or 'lz4' (storage mcap only; both "
          'writers).', choices=COMPRESSIONS, launch=True, option='--compression',
          help='mcap chunk compression (storage mcap only)'),
    Param('max_bagfile_size', 0, 'Split the bag when a file reaches this many bytes; '
          '0 = never.', range=COUNT, launch=True, option='--split-size',
          help='split the bag at N bytes per file; 0 = never'),
    Param('max_bagfile_duration', 0, 'Split the bag every this many seconds; 0 = never.',
          range=COUNT, launch=True, option='--split-duration',
          help='split the bag every N seconds; 0 = never'),
    Param('metadata_version', 9, 'metadata.yaml version: 9 (Jazzy, Kilted) or 8 (Humble '
          'reads it).', range=(8, 9)),
    Param('topics', [''], 'Topics to record (absolute names); [""] = use topic_regex.'),
    Param('topic_regex', '^/sensr/', 'Record every topic whose name matches (when topics is '
          'empty).'),
    Param('topic_intervals', [''],
          "Keep at most one message per interval on the topics that match: 'REGEX=SECONDS' "
          "entries, first match wins (e.g. ['/points$=1.0']: a cloud a second, other topics "
          "in full); [''] = every message. The rest is counted as skipped_interval, not "
          'lost.', launch=True, option='--interval', metavar='REGEX=SECONDS',
          check=parse_intervals,
          help="keep at most one message per SECONDS on topics matching REGEX, e.g. "
               "'/points$=1.0' (first match wins; '' = every message)"),
    Param('skip_empty_clouds', False,
          'Leave PointCloud2 messages without points out of the bag (counted as '
          'skipped_empty).', launch=True, option='--skip-empty-clouds',
          help='leave clouds without points out of the bag'),
    Param('clip_mode', 'off',
          "Event clips: 'off', 'with_bag' (clip bags next to the main bag) or 'only' (clip "
          'bags, no main bag: for sites that cannot keep everything).', choices=CLIP_MODES,
          launch=True, option='--clip-mode',
          help='event clips: off, with_bag (clip bags next to the main bag) or only (no '
               'main bag)'),
    Param('clip_before', 10.0, 'Seconds before an event that a clip holds (the ring buffer).',
          range=SECONDS, launch=True, option='--clip-before',
          help='seconds a clip holds before its event'),
    Param('clip_after', 10.0,
          'Seconds after an event that a clip records; a later event inside an open clip '
          'extends it by as much.', range=SECONDS, launch=True, option='--clip-after',
          help='seconds a clip records after its event'),
    Param('clip_buffer_bytes', 2 << 30,
          'Bound on the ring buffer (bytes); reached before clip_before seconds, the oldest '
          'messages leave early (counted as ring_evicted_early).', range=POSITIVE_INT64,
          launch=True, option='--clip-buffer-bytes',
          help='bound on the ring buffer of clips, bytes'),
    Param('clip_events', ['*'],
          "Zone events that start a clip: 'TYPE', 'TYPE@ZONE_ID', '*' or '*@ZONE_ID' (TYPE: "
          "ENTRY, EXIT, LOITERING, EXCEEDS_SPEED); [''] = none (~/snapshot only).",
          launch=True, option='--clip-event', metavar='TYPE[@ZONE]', check=_events,
          help='zone events that start a clip: TYPE, TYPE@ZONE_ID, * or *@ZONE_ID (TYPE: '
               "ENTRY, EXIT, LOITERING, EXCEEDS_SPEED; '' = none)"),
    Param('clip_event_topic', 'events',
          "The bridge's zone events (std_msgs/String JSON), relative to the recorder's "
          'namespace; it must be one of the recorded topics.'),
    Param('discovery_period', 0.5, 'Seconds between topic discovery passes.', range=PERIOD),
    Param('subscription_depth', 50,
          'History depth of the subscriptions: messages DDS keeps for a recorder that falls '
          'behind; older ones are overwritten there and counted as lost (memory is only '
          'used while behind).', range=POSITIVE_INT32),
    Param('max_queue_bytes', 1 << 30, 'Bytes of messages that may wait for the disk.',
          range=POSITIVE_INT64),
    Param('batch_max_messages', 16, 'Most messages per write transaction.',
          range=POSITIVE_INT32),
    Param('batch_max_bytes', 64 << 20, 'Most bytes per write transaction.',
          range=POSITIVE_INT64),
    Param('batch_min_bytes', 4 << 20,
          'Queued bytes that start a write at once (a cloud does); smaller messages wait up '
          'to batch_max_delay to share a transaction.', range=POSITIVE_INT64),
    Param('batch_max_delay', 0.1, 'Longest wait, seconds, for a batch to fill.',
          range=SECONDS),
    Param('drop_policy', 'drop_oldest',
          "When the queue is full: 'drop_oldest' (older messages at least as large as the "
          "new one first: clouds go before events) or 'drop_newest'.",
          choices=('drop_oldest', 'drop_newest')),
    Param('drain_timeout', 3.0,
          'Seconds allowed at shutdown for publishers to finish before the bag is closed.',
          range=SECONDS),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.', range=PERIOD),
    Param('stats_log_period', 10.0, 'Seconds between statistics log lines; 0 = off.',
          range=SECONDS),
    Param('stats_file', '', 'Write the final statistics here as JSON when the bag closes; '
          "'' = off."),
    Param('autostart', True, 'Configure and activate on start (run without a lifecycle '
          'manager).'),
)
"""Parameters of the recorder node."""

TABLES: Mapping[str, tuple[Param, ...]] = {'bridge': BRIDGE, 'recorder': RECORDER}
"""Both tables by node role."""


def defaults(table: Iterable[Param]) -> dict[str, Any]:
    """Return ``{name: default}`` of a table."""
    return {param.name: param.default for param in table}


def quoted_choices(choices: Sequence[str]) -> str:
    """Return ``'a' or 'b'``, ``'a', 'b' or 'c'``: the choices in an error message."""
    quoted = [repr(choice) for choice in choices]
    return ' or '.join([', '.join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def check_choices(table: Iterable[Param], values: Mapping[str, Any]) -> None:
    """Check the parameters of ``table`` that have choices against ``values``.

    Args:
        table: The node's parameters.
        values: Their values by name.

    Raises:
        ConfigError: Naming the first parameter whose value is not one of its choices.

    """
    for param in table:
        value = values[param.name]
        if param.choices and value not in param.choices:
            msg = f'{param.name} must be {quoted_choices(param.choices)}, not {value!r}'
            raise ConfigError(msg)
