# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The package's layout: no import cycles, pure subpackages without rclpy, short modules."""

from __future__ import annotations

import ast
from pathlib import Path

import sensr_bridge

PACKAGE = Path(sensr_bridge.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports, anywhere in it (functions, TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:
                if f'{base}.{alias.name}' in modules:
                    found.add(f'{base}.{alias.name}')
                elif base in modules:
                    found.add(base)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob('*.py') if '_pb2' not in p.name]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': set()}
    assert cycles(graph) == [['a', 'b', 'c']]


def test_the_import_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert 'sensr_bridge.bag.factory' in graph['sensr_bridge.bag']  # from-import in __init__
    assert 'sensr_bridge.bag.base' in graph['sensr_bridge.bag.backends.mcap_writer']


def test_no_import_cycles():
    assert cycles(import_graph()) == []


PURE = ('sensr', 'convert', 'bag', 'sim', 'process')
"""Subpackages that must work (and be tested) without rclpy."""

MAX_LINES = 500
SIZE_REASON = 'Size:'
"""How a module longer than MAX_LINES starts the paragraph of its docstring saying why."""


def package_modules() -> list[Path]:
    # The generated schema module is data.
    return sorted(p for p in PACKAGE.rglob('*.py') if p.name != '_sensr_descriptor.py')


def test_pure_subpackages_do_not_import_rclpy():
    offenders = []
    for path in package_modules():
        if path.relative_to(PACKAGE).parts[0] not in PURE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f'{module_name(path)}: {name}' for name in names
                          if name.split('.')[0] == 'rclpy']
    assert offenders == []


def test_no_module_over_500_lines_without_a_reason_at_its_top():
    long = []
    for path in package_modules():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ''
        if lines > MAX_LINES and not any(line.startswith(SIZE_REASON)
                                         for line in doc.splitlines()):
            long.append(f'{module_name(path)}: {lines} lines')
    assert long == []


def ros_free_test_modules() -> list[str]:
    """The test modules ``scripts/test.sh`` runs with the first distro only."""
    text = (PACKAGE.parent / 'scripts' / 'test.sh').read_text()
    listing = text.split('ros_free=(', 1)[1].split(')', 1)[0]
    return listing.split()


def test_modules_run_with_one_distro_only_use_nothing_of_ros():
    tests = PACKAGE.parent / 'test'
    ros = ('rclpy', 'launch', 'launch_ros', 'launch_testing', 'rosbag2_py')
    node_programs = ('sensr_bridge.nodes', 'sensr_bridge.cli.record', 'bridge_node',
                     'recorder_node')
    offenders = []
    for module in ros_free_test_modules():
        for node in ast.walk(ast.parse((tests / f'{module}.py').read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            top = [name.split('.')[0] for name in names]
            offenders += [f'{module}: imports {name}' for name in top
                          if name in ros or name.endswith(('_msgs', '_srvs'))]
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                offenders += [f'{module}: starts {p}' for p in node_programs
                              if p in node.value and module != 'test_layout']
    assert len(ros_free_test_modules()) > 5
    assert offenders == []
