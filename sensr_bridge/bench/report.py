# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A run's record and what is reported of it: summary lines, plot, the matrix's table."""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
import json
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """One benchmark run: where its files go and what it measured."""

    mode: str
    rate: float
    run_dir: Path
    result: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    label: str = ''  # what tells it from the other runs of a matrix


def summary_rows(run: Run) -> list[tuple[str, str]]:
    """The headline figures of a run as (name, value) rows."""
    r = run.result
    rows = [('rate', f"{r['rate_hz']} Hz"), ('lossless', str(r['lossless']))]
    for key in ('recorder', 'recorder_cmd', 'writer_backend', 'storage', 'cpu_hog', 'sent',
                'sim_dropped', 'received',
                'published', 'delivered', 'in_bag', 'written',
                'recorder_received', 'bridge_drops', 'recorder_dropped', 'splits',
                'latency_send_to_subscriber', 'latency_send_to_bridge_stamp',
                'latency_stamp_to_commit', 'stamp_to_commit', 'bit_exact_checked',
                'bit_exact_failed', 'bytes_to_disk_mb_per_s', 'bridge_cpu_ms_per_frame',
                'cpu_ms_per_frame', 'recorder_cpu_ms_per_msg', 'recorder_cpu_ms_per_msg_to_exit',
                'rss_mb', 'exit_seconds', 'exit_code', 'tracebacks'):
        if key in r and r[key] not in ({}, None):
            rows.append((key, json.dumps(r[key]) if isinstance(r[key], dict) else str(r[key])))
    return rows


def plot(runs: list[Run], path: Path) -> bool:
    """Throughput per stage and RSS over time per run, drops marked; False without matplotlib."""
    try:
        import matplotlib as mpl
        mpl.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    offset = 0.0
    for run in runs:
        s = run.samples
        if len(s) < 2:
            continue
        t = [x['t'] + offset for x in s]
        name = f"{run.label + ', ' if run.label else ''}{run.rate:g} Hz"
        stages = [k for k in s[0] if k != 't' and not k.endswith(('_rss_mb', '_shm_mb', '_cpu_s'))]
        for key in stages:
            rate = [0.0] + [(b[key] - a[key]) / (b['t'] - a['t']) for a, b in itertools.pairwise(s)]
            axes[0].plot(t, rate, label=f'{key} ({name})')
        for key in (k for k in s[0] if k.endswith('_rss_mb')):
            axes[1].plot(t, [x[key] for x in s], label=f'{key[:-7]} ({name})')
        if not run.result.get('lossless'):
            axes[0].axvspan(t[0], t[-1], color='red', alpha=0.08)
        offset = t[-1] + 1
    axes[0].set_ylabel('messages/s per stage')
    axes[0].set_title(f'sensr_bridge benchmark ({runs[0].mode}); red: run with losses')
    axes[1].set_ylabel('RSS (MB)')
    axes[1].set_xlabel('seconds')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='upper left')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def matrix_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per recorder run: the figures of the README's comparison table."""
    rows = []
    for run in runs:
        r = run.result
        rss = r['rss_mb'].get('recorder', {})
        p99 = r['stamp_to_commit'].get('p99_s')
        rows.append({
            'recorder': ('ros2 bag record' if r['recorder'] == 'ros2bag'
                         else f"ours ({r['writer_backend']})"),
            'storage': r['storage'], 'rate_hz': r['rate_hz'], 'in_bag': r['written'],
            'published': r['published'], 'lossless': r['lossless'],
            'recorder_cpu_ms_per_cloud': r['recorder_cpu_ms_per_msg_to_exit'],
            'rss_peak_mb': rss.get('peak_mb'), 'rss_steady_mb': rss.get('steady_mb'),
            'stamp_to_commit_p99_ms': round(p99 * 1e3, 1) if p99 else None})
    return rows


def _loss(row: dict[str, Any]) -> str:
    if row['lossless']:
        return ''
    return ' (extra)' if row['in_bag'] > row['published'] else ' (loss)'


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """``matrix_rows`` as a markdown table ('n/a' where a figure is not known)."""
    def cell(value: Any) -> str:
        return 'n/a' if value is None else f'{value:g}' if isinstance(value, float) else str(value)

    lines = ['| recorder | storage | rate (Hz) | in bag / published | recorder CPU (ms/cloud) '
             '| RSS peak / steady (MB) | stamp -> commit p99 (ms) |',
             '| --- | --- | ---: | ---: | ---: | ---: | ---: |']
    lines += [f"| {r['recorder']} | {r['storage']} | {cell(r['rate_hz'])} "
              f"| {r['in_bag']} / {r['published']}{_loss(r)} "
              f"| {cell(r['recorder_cpu_ms_per_cloud'])} "
              f"| {cell(r['rss_peak_mb'])} / {cell(r['rss_steady_mb'])} "
              f"| {cell(r['stamp_to_commit_p99_ms'])} |" for r in rows]
    return '\n'.join(lines)
