# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Build script of the sensr_bridge ament_python package."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'sensr_bridge'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['py.typed', 'sensr/proto/sensr_proto/*.proto']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='sensr_bridge developers',
    maintainer_email='dev@sensr-bridge.invalid',
    description='SENSR websocket bridge to ROS 2 and a lossless rosbag2 recorder.',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            # SIGINT/SIGTERM handled from the first instant (sensr_bridge/process/shutdown.py).
            'bridge_node = sensr_bridge.process.shutdown:bridge_node',
            'recorder_node = sensr_bridge.process.shutdown:recorder_node',
            'record = sensr_bridge.process.shutdown:record',
            'simulator = sensr_bridge.process.shutdown:simulator',
            'bag_info = sensr_bridge.bag.info:main',
            'bag_reindex = sensr_bridge.bag.reindex:main',
            'tracks = sensr_bridge.cli.tracks:main',
            'bench = sensr_bridge.bench.cli:main',
            'shm_clean = sensr_bridge.process.shm:main',
        ],
    },
)
