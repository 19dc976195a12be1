# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Linters: ruff (flake8/pep257 equivalents), copyright headers, XML well-formedness."""

from pathlib import Path
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob('sensr_bridge/**/*.py'), *ROOT.glob('test/*.py'),
                  *ROOT.glob('launch/*.py'), *ROOT.glob('scripts/*.py'), ROOT / 'setup.py'])


@pytest.mark.linter
def test_ruff():
    ruff = shutil.which('ruff', path=str(Path(sys.executable).parent)) or shutil.which('ruff')
    if ruff is None:
        pytest.skip('ruff is not installed')
    result = subprocess.run([ruff, 'check', *map(str, SOURCES)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_copyright():
    missing = [str(p.relative_to(ROOT)) for p in SOURCES
               if 'Copyright 2026 sensr_bridge developers' not in p.read_text()[:300]]
    assert not missing


@pytest.mark.linter
def test_xml_well_formed():
    for path in [ROOT / 'package.xml', *ROOT.glob('config/*.xml')]:
        ET.parse(path)


@pytest.mark.linter
def test_generated_protocol_is_current():
    pytest.importorskip('grpc_tools')
    result = subprocess.run([sys.executable, 'scripts/gen_proto.py', '--check'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.linter
def test_parameter_yamls_are_current():
    result = subprocess.run([sys.executable, 'scripts/gen_config.py', '--check'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
