# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The sqlite3 writer's SIGKILL test (``bench.storage --crash``).

A child writer (``python -m sensr_bridge.bench.storage --child``) is killed in the middle
of a batch; the bag is recovered with ``bag_reindex`` and checked: it opens, passes
``PRAGMA quick_check``, keeps every batch the child reported committed and shows no
message of the interrupted batch. Process crashes only: power loss and kernel crashes
cannot be simulated here.
"""

from __future__ import annotations

import os
from pathlib import Path
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

from rosbags.rosbag2 import Reader

from sensr_bridge.bag.backends.pragmas import Pragma, parse_storage_config, write_storage_config
from sensr_bridge.bag.backends.sqlite3_writer import Sqlite3Writer
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.reindex import reindex
from sensr_bridge.bench.clouds import CLOUD_TOPIC, CLOUD_TYPE, pointcloud2_cdr


def crash_child(uri: Path, config: Path, batches: int, batch: int, points: int) -> None:
    """Write batches, printing 'begin i' before and 'committed i' after each (crash mode).

    Message j of batch i has timestamp ``i * batch + j`` and the payload of
    ``pointcloud2_cdr(points, seed=i)``. After the last batch the child waits for
    standard input to close before closing the bag, so a kill sent during or after the
    last batch never finds a finished bag.

    Args:
        uri: Bag directory to create.
        config: Storage config file with the exact pragmas to apply.
        batches: Batches to write.
        batch: Messages per batch.
        points: Points per cloud.

    """
    writer = Sqlite3Writer(StorageOptions(uri), pragmas=parse_storage_config(config))
    writer.open()
    writer.create_topic(TopicInfo(CLOUD_TOPIC, CLOUD_TYPE))
    print('ready', flush=True)
    for index in range(batches):
        cloud = pointcloud2_cdr(points, seed=index)
        print(f'begin {index}', flush=True)
        writer.write_batch([(CLOUD_TOPIC, index * batch + j, cloud) for j in range(batch)])
        print(f'committed {index}', flush=True)
    sys.stdin.read()
    writer.close()


def check_crashed_bag(uri: Path, committed: int, batch: int, points: int) -> dict[str, Any]:
    """Recover a bag whose writer was killed during batch ``committed`` and check it.

    Args:
        uri: The bag directory.
        committed: Number of batches the writer reported committed.
        batch: Messages per batch.
        points: Points per cloud (to rebuild the expected payloads).

    Returns:
        reindex_ok, quick_check_ok, committed_present (every reported batch there with
        exact payloads), killed_batch_messages (messages of the killed batch present: 0
        if rolled back, ``batch`` if it committed before the kill landed), torn (a
        partial killed batch, or any unexpected message or payload), and error (text,
        or None).

    """
    result: dict[str, Any] = {'reindex_ok': False, 'quick_check_ok': False,
                              'committed_present': False, 'killed_batch_messages': 0,
                              'torn': False, 'error': None}
    try:
        reindex(uri)
        result['reindex_ok'] = True
        result['quick_check_ok'] = all(_quick_check(db3) for db3 in uri.glob('*.db3'))
        payloads = {i: pointcloud2_cdr(points, seed=i) for i in range(committed + 1)}
        present: set[int] = set()
        with Reader(uri) as reader:
            for _, stamp, data in reader.messages():
                index = stamp // batch
                if index > committed or data != payloads[index] or stamp in present:
                    result['torn'] = True
                present.add(stamp)
        result['committed_present'] = set(range(committed * batch)) <= present
        result['killed_batch_messages'] = len(present - set(range(committed * batch)))
        result['torn'] |= result['killed_batch_messages'] not in (0, batch)
    except Exception as err:  # a torn bag may break reindex or the reader in any way
        result['error'] = f'{type(err).__name__}: {err}'
    return result


def _quick_check(db3: Path) -> bool:
    conn = sqlite3.connect(db3)
    try:
        return conn.execute('PRAGMA quick_check').fetchone()[0] == 'ok'
    finally:
        conn.close()


def run_crash(root: Path, sets: dict[str, list[Pragma]], *, runs: int, batch: int,
              points: int, seed: int = 0) -> list[dict[str, Any]]:
    """SIGKILL a child writer mid-batch ``runs`` times per pragma set and check the bags.

    Args:
        root: Scratch directory.
        sets: Pragma sets by name, e.g. from ``PRAGMA_SETS``.
        runs: Kills per set.
        batch: Messages per batch.
        points: Points per cloud.
        seed: Seed of the kill timing.

    Returns:
        One row per set with counts over its runs.

    """
    rng = random.Random(seed)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get('PYTHONPATH', '')])}
    rows = []
    for name, pragmas in sets.items():
        config = root / 'pragmas.yaml'
        write_storage_config(config, pragmas)
        row = {'case': name, 'runs': runs, 'killed': 0, 'reindex_ok': 0,
               'quick_check_ok': 0, 'committed_present': 0, 'killed_batch_kept': 0,
               'torn': 0, 'clean': 0, 'silent_loss': 0, 'errors': []}
        for _ in range(runs):
            uri = root / 'crash'
            target = rng.randint(1, 3)
            # The child writes batches 0..target and waits: the kill lands in batch
            # target or just after it, never in a later one.
            child = subprocess.Popen(
                [sys.executable, '-m', 'sensr_bridge.bench.storage', '--child', str(uri),
                 '--child-config', str(config), '--batch', str(batch),
                 '--points', str(points), '--count', str(target + 1)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            committed, began, batch_s = 0, 0.0, 0.0
            for line in child.stdout:
                if line.startswith('begin'):
                    began = time.perf_counter()
                if line.startswith('committed'):
                    committed += 1
                    batch_s = time.perf_counter() - began
                if line.strip() == f'begin {target}':
                    # Land anywhere inside this batch, timed by the previous one.
                    time.sleep(rng.uniform(0.0, batch_s))
                    child.send_signal(signal.SIGKILL)
                    break
            child.wait()
            child.stdin.close()
            child.stdout.close()
            row['killed'] += int(child.returncode == -signal.SIGKILL)
            checked = check_crashed_bag(uri, committed, batch, points)
            for key in ('reindex_ok', 'quick_check_ok', 'committed_present', 'torn'):
                row[key] += int(checked[key])
            row['killed_batch_kept'] += int(checked['killed_batch_messages'] == batch)
            detected = checked['error'] or not checked['quick_check_ok']
            intact = checked['committed_present'] and not checked['torn']
            row['clean'] += int(intact and not detected)
            row['silent_loss'] += int(not intact and not detected)
            if checked['error']:
                row['errors'].append(checked['error'])
            shutil.rmtree(uri)
        rows.append(row)
        print(f'  {name}: {row}', file=sys.stderr)
    return rows


def format_crash_table(rows: list[dict[str, Any]]) -> str:
    """Return ``run_crash`` rows as a text table, with a note on what was not tested."""
    lines = [f'{"case":<22} {"runs":>4} {"killed":>6} {"reindex":>7} {"check":>5} '
             f'{"kept":>4} {"late":>4} {"torn":>4} {"clean":>5} {"silent":>6}']
    lines += [f'{r["case"]:<22} {r["runs"]:4d} {r["killed"]:6d} '
              f'{r["reindex_ok"]:7d} {r["quick_check_ok"]:5d} {r["committed_present"]:4d} '
              f'{r["killed_batch_kept"]:4d} {r["torn"]:4d} {r["clean"]:5d} '
              f'{r["silent_loss"]:6d}' for r in rows]
    lines.append('reindex: bag recovered; check: PRAGMA quick_check ok; kept: every batch '
                 'reported committed present bit-exact;')
    lines.append('late: the killed batch had committed before the kill landed; torn: part of '
                 'a batch or a wrong payload visible;')
    lines.append('clean: recovered, checked, kept, not torn; silent: data lost or torn '
                 'without any error or failed check.')
    lines.append('Only process crashes (SIGKILL) are tested; power loss cannot be.')
    return '\n'.join(lines)
