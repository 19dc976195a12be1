# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The recorder's parameter values turned into checked settings: bag options, queues, topics.

No rclpy: ``p`` is the dict of the recorder node's parameter values (name: value).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import re
import time
from typing import Any

from sensr_bridge.bag import base as bag
from sensr_bridge.bag.queue import BatchingWriter
from sensr_bridge.errors import ConfigError
from sensr_bridge.nodes import params


def check(p: dict[str, Any]) -> None:
    """Raise a ConfigError naming the parameter and its value when one is invalid."""
    params.check_choices(params.RECORDER, p)
    checks = [
        (p['subscription_depth'] >= 1,
         f"subscription_depth must be >= 1, not {p['subscription_depth']!r}"),
        (time.strftime(p['bag_name']).strip() not in ('', '.', '..'),
         f"bag_name {p['bag_name']!r} names no directory"),
    ]
    for ok, text in checks:
        if not ok:
            raise ConfigError(text)


def topic_filter(pattern: str) -> re.Pattern[str]:
    """Compile ``topic_regex``; an invalid one is a ConfigError naming it and its value."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        msg = f'topic_regex {pattern!r} is not a valid regular expression: {exc}'
        raise ConfigError(msg) from exc


def storage_options(p: dict[str, Any], path: Path, *, max_bagfile_size: int = 0,
                    max_bagfile_duration: int = 0, clip_reason: str = '') -> bag.StorageOptions:
    """Return the storage options of the main bag, or of a clip bag (``clip_reason`` set)."""
    custom = {'recorded_by': 'sensr_bridge'}
    if clip_reason:
        custom['clip_reason'] = clip_reason
    return bag.StorageOptions(
        uri=path, storage_id=p['storage'], max_bagfile_size=max_bagfile_size,
        max_bagfile_duration=max_bagfile_duration,
        storage_preset_profile=p['storage_preset'],
        storage_config_uri=p['storage_config_file'], metadata_version=p['metadata_version'],
        custom_data=custom, compression=p['compression'])


def batching_writer(p: dict[str, Any], writer: bag.BagWriter, extra_queue_bytes: int,
                    on_error: Callable[[Exception], None],
                    stamp_of: Callable[[str, bytes], int | None]) -> BatchingWriter:
    """Return a queue for ``writer`` with the batch parameters; a clip's holds its lead-in too."""
    return BatchingWriter(
        writer, max_queue_bytes=p['max_queue_bytes'] + extra_queue_bytes,
        batch_max_messages=p['batch_max_messages'],
        batch_max_bytes=p['batch_max_bytes'], batch_min_bytes=p['batch_min_bytes'],
        batch_max_delay_s=p['batch_max_delay'],
        drop_policy=p['drop_policy'], on_error=on_error, stamp_of=stamp_of)
