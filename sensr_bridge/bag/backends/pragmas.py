# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""sqlite3 pragmas: rosbag2 storage-config files, presets, and applying them.

The config file format and its validation are rosbag2's (``rosbag2_storage_sqlite3``
``parse_pragmas``): a YAML mapping whose ``write: pragmas:`` list holds entries like
``"journal_mode = MEMORY"`` or ``"cache_size(1000)"``; entries containing ``'``,
``;`` or ``"`` and entries starting with ``=`` or ``(`` are rejected. Pragmas of the
config file win over those of the preset, as in rosbag2.

Unlike rosbag2, which applies pragmas in hash-map order, they are applied in a fixed
order: ``page_size``, ``auto_vacuum`` and ``encoding`` first (they only take effect
on an empty database, and ``page_size`` cannot change once the database is in WAL
mode), then ``journal_mode``, then the rest in file order. Each assignment is read
back with ``PRAGMA name;`` and a value that did not take raises ``ConfigError``.
"""

from __future__ import annotations

from pathlib import Path
import re
import sqlite3

import yaml

from sensr_bridge.errors import ConfigError

Pragma = tuple[str, str]
"""A pragma name (optionally ``schema.name``) and its value ('' for a bare statement)."""

# Presets. The default was chosen with ``python -m sensr_bridge.bench.storage``: 60
# PointCloud2 messages of 14.7 MB in batches of 4, median of 3 runs, on the 2-core
# development VM (ext4 on a virtio disk; run-to-run noise about 30 %). "write" is MB/s
# until close() returns, "durable" includes an fsync of the bag files afterwards; the
# raw-file baseline (no SQLite) reached 845 MB/s durable in the same run. "malformed"
# counts bags that SIGKILL during a batch left unrecoverable (``--crash``, 10 runs with
# 0.5 MB messages; with 14.7 MB messages the commit is a smaller part of a batch: 0 of 6
# for MEMORY/OFF, but 3 of 6 with a page cache holding the whole batch):
#
#   journal/sync, page size   write  durable  malformed
#   MEMORY/OFF, 4 KiB           769      355  7 of 10
#   WAL/NORMAL, 4 KiB           171      171  0 of 10 (every byte is written twice)
#   TRUNCATE/OFF, 4 KiB         693      340  0 of 10
#   MEMORY/OFF, 64 KiB         1638      623  3 of 10
#   PERSIST/OFF, 64 KiB        1544      628  0 of 10
#   TRUNCATE/OFF, 64 KiB       1357      585  0 of 10 (1740 / 651 in an earlier run)
#
# With MEMORY a kill during COMMIT leaves half-written pages and no journal to undo
# them: reindex fails with "database disk image is malformed" and the file's committed
# batches are only reachable with ``sqlite3 .recover``. A rollback journal undoes the
# interrupted batch on the next open and costs nothing measurable: SQLite does not
# journal pages appended beyond the file's size at the start of a transaction, so an
# append-only bag journals only the few b-tree pages a batch rewrites. 64 KiB pages cut
# the overflow pages of a 14.7 MB blob (one pwrite each) from 3600 to 225. TRUNCATE and
# PERSIST are equal within the noise; TRUNCATE leaves no stale journal content.
# synchronous=OFF skips fsync, so a power loss or kernel crash (not testable here) may
# lose the last batches. 'durable' adds an fsync of journal and file at every commit
# (synchronous=FULL): a committed batch survives power loss, at 585 MB/s (40 clouds/s)
# where rosbag2's 'resilient' WAL writes every byte twice and reached 161 MB/s.
# Hence DEFAULT_PRESET = 'crash_safe': as fast as the fastest set measured, and safe
# against process crashes. 'resilient' and 'rosbag2_default' reproduce rosbag2's presets.
PRESETS: dict[str, tuple[Pragma, ...]] = {
    'crash_safe': (('page_size', '65536'), ('journal_mode', 'TRUNCATE'),
                   ('synchronous', 'OFF')),
    'rosbag2_default': (('journal_mode', 'MEMORY'), ('synchronous', 'OFF')),
    'durable': (('page_size', '65536'), ('journal_mode', 'TRUNCATE'),
                ('synchronous', 'FULL')),
    'resilient': (('journal_mode', 'WAL'), ('synchronous', 'NORMAL')),
}
DEFAULT_PRESET = 'crash_safe'
"""What the presets '' and 'none' mean for this package's sqlite3 writer."""

_FIRST = ('page_size', 'auto_vacuum', 'encoding', 'journal_mode')
_FORBIDDEN = re.compile('[\';"]')
_NAME = re.compile(r'^(?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*$')
_ENTRY = re.compile(r'^(?P<name>[^=(]*?)\s*(?:=\s*(?P<eq>.*?)|\((?P<paren>.*)\))?\s*$')
_SYMBOLS = {
    'synchronous': {'off': '0', 'normal': '1', 'full': '2', 'extra': '3'},
    'auto_vacuum': {'none': '0', 'full': '1', 'incremental': '2'},
    'temp_store': {'default': '0', 'file': '1', 'memory': '2'},
    'secure_delete': {'fast': '2'},
}
_BOOLEANS = {'on': '1', 'true': '1', 'yes': '1', 'off': '0', 'false': '0', 'no': '0'}


def preset_names() -> list[str]:
    """The accepted preset names.

    Returns:
        '' and 'none' (the default preset) followed by the named presets.

    """
    return ['', 'none', *PRESETS]


def preset_pragmas(preset: str) -> tuple[Pragma, ...]:
    """The pragmas of a preset.

    Args:
        preset: A name from ``preset_names()``.

    Returns:
        The pragmas.

    Raises:
        ConfigError: Unknown preset.

    """
    name = DEFAULT_PRESET if preset in ('', 'none') else preset
    if name not in PRESETS:
        msg = (f'unknown sqlite3 storage preset {preset!r} (storage_preset); valid: '
               f'{preset_names()}')
        raise ConfigError(msg)
    return PRESETS[name]


def parse_pragma(entry: str) -> Pragma:
    """Parse one pragma entry of a storage config file.

    Args:
        entry: e.g. 'journal_mode = WAL', 'cache_size(1000)' or 'schema_version'.

    Returns:
        The name and value ('' if the entry has none).

    Raises:
        ConfigError: Forbidden characters, or not of the form above.

    """
    text = entry.strip()
    bad = _FORBIDDEN.search(text)
    if bad:
        msg = (f'invalid character {bad.group()} in sqlite3 pragma {entry!r}; '
               f'avoid the characters \';"')
        raise ConfigError(msg)
    if text.startswith(('=', '(')):
        msg = f'incorrect storage setting syntax: {entry!r}'
        raise ConfigError(msg)
    match = _ENTRY.match(text)
    name = match.group('name') if match else ''
    if not _NAME.match(name):
        msg = f'incorrect storage setting syntax: {entry!r} (expected "name = value")'
        raise ConfigError(msg)
    value = match.group('eq') if match.group('eq') is not None else match.group('paren')
    if value is not None and not value.strip():
        msg = f'incorrect storage setting syntax: {entry!r} (empty value)'
        raise ConfigError(msg)
    return name, (value or '').strip()


def parse_storage_config(path: str | Path) -> list[Pragma]:
    """Read the ``write: pragmas:`` list of a rosbag2 sqlite3 storage config file.

    Args:
        path: The YAML file.

    Returns:
        The pragmas in file order (a later entry for the same name replaces an earlier).

    Raises:
        ConfigError: The file cannot be read, lacks ``write: pragmas:``, or has a bad
            entry.

    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
        entries = data['write']['pragmas']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        msg = f'exception on parsing sqlite3 config file {path} (storage_config_file): {err!r}'
        raise ConfigError(msg) from err
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        msg = f'sqlite3 config file {path}: write.pragmas must be a list of strings'
        raise ConfigError(msg)
    pragmas: dict[str, str] = {}
    for entry in entries:
        if entry.strip():
            name, value = parse_pragma(entry)
            pragmas[name] = value
    return list(pragmas.items())


def _base_name(name: str) -> str:
    return name.rsplit('.', 1)[-1].lower()


def pragma_value(pragmas: list[Pragma], name: str) -> str | None:
    """The value a pragma list assigns to ``name`` (with or without schema prefix).

    Args:
        pragmas: From ``resolve_pragmas``.
        name: Pragma name, e.g. 'page_size'.

    Returns:
        The value, or None if the list does not set it.

    """
    return next((v for n, v in pragmas if _base_name(n) == name.lower() and v), None)


def resolve_pragmas(preset: str, config_uri: str | Path = '') -> list[Pragma]:
    """Combine a config file and a preset into the pragmas to apply, in apply order.

    Args:
        preset: Preset name ('' or 'none' mean ``DEFAULT_PRESET``).
        config_uri: rosbag2 storage config file, or '' for none.

    Returns:
        The pragmas, ordered as they must be applied.

    Raises:
        ConfigError: Unknown preset or bad config file.

    """
    chosen = parse_storage_config(config_uri) if config_uri else []
    names = {_base_name(name) for name, _ in chosen}
    # The config file wins: preset pragmas only fill names the file does not set.
    chosen += [p for p in preset_pragmas(preset) if _base_name(p[0]) not in names]
    return order_pragmas(chosen)


def order_pragmas(pragmas: list[Pragma]) -> list[Pragma]:
    """Sort pragmas into the safe apply order (stable otherwise).

    Args:
        pragmas: The pragmas.

    Returns:
        ``page_size``, ``auto_vacuum``, ``encoding``, ``journal_mode`` first, then the
        rest in their given order.

    """
    def rank(pragma: Pragma) -> int:
        base = _base_name(pragma[0])
        return _FIRST.index(base) if base in _FIRST else len(_FIRST)

    return sorted(pragmas, key=rank)


def _normalize(name: str, value: str) -> str:
    text = str(value).strip().lower()
    text = _SYMBOLS.get(_base_name(name), {}).get(text, _BOOLEANS.get(text, text))
    try:
        return str(int(text))
    except ValueError:
        return text


def apply_pragmas(conn: sqlite3.Connection, pragmas: list[Pragma]) -> None:
    """Apply pragmas in order and check that each assignment took.

    Args:
        conn: An open connection, before any table is created.
        pragmas: From ``resolve_pragmas``.

    Raises:
        ConfigError: sqlite rejected a pragma, or reads back another value.

    """
    for name, value in pragmas:
        statement = f'PRAGMA {name} = {value}' if value else f'PRAGMA {name}'
        try:
            conn.execute(statement).fetchall()
            if not value:
                continue
            row = conn.execute(f'PRAGMA {name}').fetchone()
        except sqlite3.Error as err:
            msg = f'sqlite3 rejected "{statement}": {err}'
            raise ConfigError(msg) from err
        if row is None or _normalize(name, row[0]) != _normalize(name, value):
            actual = 'nothing (unknown pragma?)' if row is None else repr(row[0])
            msg = f'sqlite3 pragma "{name} = {value}" did not take: it reads back {actual}'
            raise ConfigError(msg)


def write_storage_config(path: str | Path, pragmas: list[Pragma]) -> None:
    """Write pragmas as a rosbag2 sqlite3 storage config file.

    Args:
        path: Output file.
        pragmas: The pragmas.

    """
    entries = [f'{name} = {value}' if value else name for name, value in pragmas]
    Path(path).write_text(yaml.safe_dump({'write': {'pragmas': entries}}), encoding='utf-8')
