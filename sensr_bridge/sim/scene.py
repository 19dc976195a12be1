# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The simulator's synthetic site: ground, walls, buildings, moving objects and zones.

Deterministic for a seed: :class:`Scene` builds each precomputed frame's point clouds
(:meth:`Scene.point_body`) and its objects (:meth:`Scene.stream_template`) from the seed
and the frame's slot only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sensr_bridge.sensr import protocol

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from sensr_bridge.sim.config import SimulatorConfig

SITE_HALF_M = 40.0
"""Half the side of the square site, metres."""
_WALL_HEIGHT_M = 4.0
_BUILDINGS = 6
_HISTORY_STATES = 10
HISTORY_STEP_S = 0.1
"""Time between an object's history states."""
_PREDICTION_STATES = 10
_PREDICTION_STEP_S = 0.3
_REACHABLE_T_S = 1.0
ALGO_NODE = 'algo_0'
"""The algorithm node: id of the GROUND and BACKGROUND clouds, and of the health."""
LIDARS = ('lidar_0', 'lidar_1')
"""Ids of the RAW clouds."""

_LABEL_CAR = protocol.LABEL_TYPE.values_by_name['LABEL_CAR'].number
_LABEL_PEDESTRIAN = protocol.LABEL_TYPE.values_by_name['LABEL_PEDESTRIAN'].number
_LABEL_CYCLIST = protocol.LABEL_TYPE.values_by_name['LABEL_CYCLIST'].number
LABEL_MISC = protocol.LABEL_TYPE.values_by_name['LABEL_MISC'].number
_LABEL_CYCLE = (
    _LABEL_CAR, _LABEL_PEDESTRIAN, _LABEL_CAR, _LABEL_CYCLIST, _LABEL_PEDESTRIAN, LABEL_MISC,
)
# (length, width, height) in metres and nominal speed in m/s per label.
_LABEL_SIZE = {
    _LABEL_CAR: (4.5, 1.9, 1.6),
    _LABEL_PEDESTRIAN: (0.6, 0.6, 1.75),
    _LABEL_CYCLIST: (1.8, 0.7, 1.7),
    LABEL_MISC: (1.0, 1.0, 1.0),
}
_LABEL_SPEED = {_LABEL_CAR: 8.0, _LABEL_PEDESTRIAN: 1.4, _LABEL_CYCLIST: 4.5, LABEL_MISC: 0.0}
TRACKING = protocol.TRACKING_STATUS.values_by_name['TRACKING'].number
_VALIDATING = protocol.TRACKING_STATUS.values_by_name['VALIDATING'].number
_ZONE_EVENT = protocol.ZONE_TYPE.values_by_name['ZONE_TYPE_EVENT'].number
_ZONE_EXCLUSION = protocol.ZONE_TYPE.values_by_name['ZONE_TYPE_EXCLUSION'].number
# (id, name, type, x_min, x_max, y_min, y_max): axis-aligned so membership is cheap.
_ZONES = (
    (1, 'entrance', _ZONE_EVENT, -20.0, -5.0, -10.0, 10.0),
    (2, 'restricted', _ZONE_EXCLUSION, 10.0, 25.0, 5.0, 20.0),
    (3, 'loading_bay', _ZONE_EVENT, 5.0, 20.0, -25.0, -10.0),
)
_ZONE_MAX_Z_M = 3.0


class SlotState(NamedTuple):
    """Object kinematics of one precomputed frame."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    zone_ids: list[list[int]]


def set_vector(target: Message, x: float, y: float, z: float = 0.0) -> None:
    """Set a protobuf ``Vector3`` from numbers of any numeric type."""
    target.x, target.y, target.z = float(x), float(y), float(z)


def _sample_box_surfaces(rng: np.random.Generator, boxes: np.ndarray,
                         counts: np.ndarray) -> np.ndarray:
    """Sample points on the sides and tops of yawed boxes.

    Args:
        rng: Random generator.
        boxes: ``(k, 7)`` rows of centre x, centre y, bottom z, length, width, height, yaw.
        counts: Points to sample per box.

    Returns:
        ``(sum(counts), 3)`` points.

    """
    b = boxes[np.repeat(np.arange(len(boxes)), counts)]
    n = len(b)
    length, width, height = b[:, 3], b[:, 4], b[:, 5]
    # Two faces across x, two across y and the top, weighted by area.
    weights = np.cumsum(np.stack([2 * width * height, 2 * length * height, length * width], 1), 1)
    pick = rng.random(n) * weights[:, 2]
    axis = (pick > weights[:, 0]).astype(np.intp) + (pick > weights[:, 1])
    unit = rng.random((n, 3))
    unit[np.arange(n), axis] = np.where(axis == 2, 1.0, rng.integers(0, 2, n))
    local = (unit - (0.5, 0.5, 0.0)) * b[:, 3:6]
    cos, sin = np.cos(b[:, 6]), np.sin(b[:, 6])
    return np.column_stack([
        b[:, 0] + cos * local[:, 0] - sin * local[:, 1],
        b[:, 1] + sin * local[:, 0] + cos * local[:, 1],
        b[:, 2] + local[:, 2],
    ])


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    length, width, height = boxes[:, 3], boxes[:, 4], boxes[:, 5]
    return 2 * (length + width) * height + length * width


class Scene:
    """A deterministic synthetic site: ground, walls, buildings and moving objects.

    Attributes:
        ids: Object ids.
        labels: Object labels (``LABEL_TYPE`` numbers).
        sizes: ``(n, 3)`` length, width, height per object.
        speed: Speed per object, m/s.
        yaw_rate: Turn rate per object, rad/s.
        confidence: Detection confidence per object.
        zones: The site's zones, as ``stream.zones`` carries them.

    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._cfg = config
        rng = np.random.default_rng([config.seed, 0])
        half = SITE_HALF_M
        walls = np.array([
            [0.0, half, 0.0, 2 * half, 0.3, _WALL_HEIGHT_M, 0.0],
            [0.0, -half, 0.0, 2 * half, 0.3, _WALL_HEIGHT_M, 0.0],
            [half, 0.0, 0.0, 0.3, 2 * half, _WALL_HEIGHT_M, 0.0],
            [-half, 0.0, 0.0, 0.3, 2 * half, _WALL_HEIGHT_M, 0.0],
        ])
        buildings = np.column_stack([
            rng.uniform(-half + 8, half - 8, (_BUILDINGS, 2)),
            np.zeros(_BUILDINGS),
            rng.uniform((4.0, 4.0, 3.0), (12.0, 12.0, 8.0), (_BUILDINGS, 3)),
            rng.uniform(-math.pi, math.pi, _BUILDINGS),
        ])
        self._static = np.concatenate([walls, buildings])
        n = config.objects
        self.ids = np.arange(1, n + 1)
        self.labels = np.array([_LABEL_CYCLE[i % len(_LABEL_CYCLE)] for i in range(n)], int)
        self.sizes = np.array([_LABEL_SIZE[label] for label in self.labels]).reshape(n, 3)
        nominal = np.array([_LABEL_SPEED[label] for label in self.labels])
        self.speed = nominal * rng.uniform(0.7, 1.3, n)
        self.yaw_rate = np.where(nominal > 0, rng.uniform(-0.1, 0.1, n), 0.0)
        self._x0 = rng.uniform(-0.8 * half, 0.8 * half, n)
        self._y0 = rng.uniform(-0.8 * half, 0.8 * half, n)
        self._heading0 = rng.uniform(-math.pi, math.pi, n)
        self.confidence = rng.uniform(0.6, 0.99, n)
        self.zones = []
        for zone_id, name, zone_type, x_min, x_max, y_min, y_max in _ZONES:
            zone = protocol.ZoneConfig(id=zone_id, name=name, type=zone_type)
            for x, y in ((x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max)):
                corner = zone.pbox.points.add()
                corner.x, corner.y = x, y
            zone.pbox.max_z = _ZONE_MAX_Z_M
            self.zones.append(zone)

    def poses(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return x, y and yaw of every object at time ``t`` (constant turn rate model)."""
        yaw = self._heading0 + self.yaw_rate * t
        straight = np.abs(self.yaw_rate) < 1e-9
        turn = np.where(straight, 1.0, self.yaw_rate)
        dx = np.where(straight, self.speed * np.cos(self._heading0) * t,
                      self.speed / turn * (np.sin(yaw) - np.sin(self._heading0)))
        dy = np.where(straight, self.speed * np.sin(self._heading0) * t,
                      -self.speed / turn * (np.cos(yaw) - np.cos(self._heading0)))
        half = SITE_HALF_M
        # Objects leaving the site re-enter on the opposite side.
        x = (self._x0 + dx + half) % (2 * half) - half
        y = (self._y0 + dy + half) % (2 * half) - half
        return x, y, yaw

    def state(self, slot: int) -> SlotState:
        """Return the kinematics of precomputed frame ``slot``."""
        x, y, yaw = self.poses(slot / self._cfg.rate_hz)
        zone_ids = [
            [z[0] for z in _ZONES if z[3] <= xi <= z[4] and z[5] <= yi <= z[6]]
            for xi, yi in zip(x, y, strict=True)
        ]
        return SlotState(x, y, yaw, self.speed * np.cos(yaw), self.speed * np.sin(yaw), zone_ids)

    def _object_boxes(self, state: SlotState) -> np.ndarray:
        n = len(state.x)
        return np.column_stack([state.x, state.y, np.zeros(n), self.sizes, state.yaw])

    def _surfaces(self, rng: np.random.Generator, boxes: np.ndarray, n: int,
                  intensity: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        areas = _box_areas(boxes)
        xyz = _sample_box_surfaces(rng, boxes, rng.multinomial(n, areas / areas.sum()))
        return xyz, rng.uniform(*intensity, n)

    def _ground(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        xy = rng.uniform(-SITE_HALF_M, SITE_HALF_M, (n, 2))
        return np.column_stack([xy, rng.normal(0.0, 0.02, n)]), rng.uniform(10.0, 40.0, n)

    def _raw(self, rng: np.random.Generator, n: int,
             objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points as one lidar sees them: ground, background and objects, with noise."""
        n_ground = n * 45 // 100
        n_objects = n * 15 // 100 if len(objects) else 0
        parts = [
            self._ground(rng, n_ground),
            self._surfaces(rng, self._static, n - n_ground - n_objects, (30.0, 120.0)),
        ]
        if n_objects:
            parts.append(self._surfaces(rng, objects, n_objects, (60.0, 255.0)))
        xyz = np.concatenate([p[0] for p in parts])
        return xyz + rng.normal(0.0, 0.01, xyz.shape), np.concatenate([p[1] for p in parts])

    def point_body(self, slot: int, state: SlotState) -> bytes:
        """Return the serialized PointResult of precomputed frame ``slot``, without uid."""
        cfg = self._cfg
        rng = np.random.default_rng([cfg.seed, 1, slot])
        n_ground = cfg.points * 20 // 100
        n_background = cfg.points * 30 // 100
        n_raw = cfg.points - n_ground - n_background
        clouds = [
            (protocol.CLOUD_GROUND, ALGO_NODE, *self._ground(rng, n_ground)),
            (protocol.CLOUD_BACKGROUND, ALGO_NODE,
             *self._surfaces(rng, self._static, n_background, (30.0, 120.0))),
        ]
        objects = self._object_boxes(state)
        for index, lidar in enumerate(LIDARS):
            n = n_raw // 2 + (n_raw % 2 if index else 0)
            clouds.append((protocol.CLOUD_RAW, lidar, *self._raw(rng, n, objects)))
        result = protocol.PointResult()
        for cloud_type, cloud_id, xyz, intensities in clouds:
            if len(xyz):
                cloud = result.points.add(type=cloud_type, id=cloud_id)
                cloud.points = xyz.astype('<f4').tobytes()
                cloud.intensities = intensities.astype('<f4').tobytes()
        return result.SerializeToString()

    def stream_template(self, slot: int, state: SlotState) -> bytes:
        """Return the OutputMessage of frame ``slot`` without its per-send timestamps."""
        cfg = self._cfg
        rng = np.random.default_rng([cfg.seed, 2, slot])
        t = slot / cfg.rate_hz
        history = [self.poses(t - k * HISTORY_STEP_S) for k in range(_HISTORY_STATES, 0, -1)]
        future = [self.poses(t + k * _PREDICTION_STEP_S) for k in range(1, _PREDICTION_STATES + 1)]
        reach = self.poses(t + _REACHABLE_T_S)
        boxes = self._object_boxes(state)
        message = protocol.OutputMessage()
        stream = message.stream
        stream.has_objects = True
        for i in range(len(self.ids)):
            obj = stream.objects.add(
                id=int(self.ids[i]), label=int(self.labels[i]),
                confidence=float(self.confidence[i]),
                tracking_status=_VALIDATING if i % 7 == 6 else TRACKING,
                yaw_rate=float(self.yaw_rate[i]), is_static=bool(self.speed[i] == 0),
                zone_ids=state.zone_ids[i])
            set_vector(obj.bbox.position, state.x[i], state.y[i])
            set_vector(obj.bbox.size, *self.sizes[i])
            obj.bbox.yaw = float(state.yaw[i])
            set_vector(obj.velocity, state.vx[i], state.vy[i])
            for hx, hy, _ in history:
                set_vector(obj.history.states.add().position, hx[i], hy[i])
            for px, py, _ in future:
                set_vector(obj.prediction.positions.add(), px[i], py[i])
            reachable = obj.prediction.reachable_set.add(t_offset=_REACHABLE_T_S)
            spread = 0.5 + 0.25 * self.speed[i]
            for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                corner = reachable.space.points.add()
                corner.x = float(reach[0][i] + dx * spread)
                corner.y = float(reach[1][i] + dy * spread)
            reachable.space.max_z = float(self.sizes[i][2])
            xyz, intensities = self._surfaces(rng, boxes[i:i + 1], cfg.object_points,
                                              (60.0, 255.0))
            obj.points = xyz.astype('<f4').tobytes()
            obj.intensities = intensities.astype('<f4').tobytes()
        return message.SerializeToString()
