# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""JSON of zones, events and health: every field printed, zeros included."""

from __future__ import annotations

import json

from sensr_bridge import outputs, protocol


def test_zones_json_prints_zero_coordinates_and_ids():
    zone = protocol.ZoneConfig(id=0, name='')
    for x, y in ((0.0, 0.0), (5.0, 0.0), (5.0, 5.0)):
        point = zone.pbox.points.add()
        point.x, point.y = x, y
    zone.pbox.max_z = 2.0
    # Before: [{"pbox":{"max_z":2.0,"points":[{},{"x":5.0},{"x":5.0,"y":5.0}]}}]
    assert json.loads(outputs.zones_json([zone])) == [{
        'id': 0, 'name': '', 'type': protocol.enum_name(
            protocol.ZoneConfig.DESCRIPTOR.fields_by_name['type'].enum_type, 0),
        'pbox': {'points': [{'x': 0.0, 'y': 0.0}, {'x': 5.0, 'y': 0.0},
                            {'x': 5.0, 'y': 5.0}], 'min_z': 0.0, 'max_z': 2.0}}]


def test_event_json_prints_every_field():
    message = protocol.OutputMessage()
    event = message.event.zone.add()
    event.id = 0
    event.object.id = 0
    event.object.position.x = 3.0
    losing = message.event.losing.add()
    losing.position.y = 0.0
    data = json.loads(outputs.to_json(message.event, stamp_ns=7))
    assert data['stamp_ns'] == 7
    zone = data['zone'][0]
    assert (zone['id'], zone['type']) == (0, 'NONE')
    assert zone['object']['id'] == 0
    assert zone['object']['position'] == {'x': 3.0, 'y': 0.0, 'z': 0.0}
    assert zone['object']['heading'] == 0.0
    assert data['losing'][0]['id'] == 0
    assert data['losing'][0]['heading'] == 0.0
    assert data['online_recalibration'] == []
    assert 'timestamp' not in zone  # a sub-message that is not set stays out
