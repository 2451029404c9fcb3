"""The etcd layout the agents watch, and the pure code around it.

Nothing here imports Neutron or talks to etcd, so it is unit-tested on its
own (networking_aap/tests/test_layout.py).

    <prefix>/neutron/<kind>/<id>   written by the driver: one JSON object,
                                   Neutron's resource as the API returns it
    <prefix>/chassis/<name>        written by the agents, under a lease
    <prefix>/bindings/<port_id>    written by the agents, under the lease
    <prefix>/driver/epoch          written by the driver after a full
                                   resync; its absence means etcd lost data
"""

import json

NETWORKS = 'networks'
SUBNETS = 'subnets'
PORTS = 'ports'
ROUTERS = 'routers'
SECURITY_GROUPS = 'security_groups'
FLOATINGIPS = 'floatingips'

KINDS = (NETWORKS, SUBNETS, PORTS, ROUTERS, SECURITY_GROUPS, FLOATINGIPS)


class Layout:
    """Key names under one prefix (default ``/aap``)."""

    def __init__(self, prefix='/aap'):
        prefix = '/' + prefix.strip('/')
        if prefix == '/':
            raise ValueError('the etcd prefix must not be empty')
        self.prefix = prefix
        self.neutron = prefix + '/neutron/'
        self.chassis = prefix + '/chassis/'
        self.bindings = prefix + '/bindings/'
        self.epoch = prefix + '/driver/epoch'

    def key(self, kind, resource_id):
        if kind not in KINDS:
            raise ValueError('unknown kind %r' % (kind,))
        if not resource_id or '/' in resource_id:
            raise ValueError('bad resource id %r' % (resource_id,))
        return '%s%s/%s' % (self.neutron, kind, resource_id)

    def parse(self, key):
        """(kind, id) of a key under the neutron prefix, else None."""
        if not key.startswith(self.neutron):
            return None
        rest = key[len(self.neutron):]
        kind, sep, resource_id = rest.partition('/')
        if not sep or kind not in KINDS or not resource_id or \
                '/' in resource_id:
            return None
        return kind, resource_id

    def chassis_key(self, name):
        return self.chassis + name

    def binding_key(self, port_id):
        return self.bindings + port_id

    def name_under(self, prefix, key):
        """The last part of ``key`` if it is directly under ``prefix``."""
        if not key.startswith(prefix):
            return None
        name = key[len(prefix):]
        return name if name and '/' not in name else None


def api_shape(obj, attribute_map):
    """``obj`` with only the attributes the API shows an admin: those of
    ``attribute_map`` (Neutron's attribute map of the resource's
    collection, extensions included) marked visible, as Neutron's API
    strips the others (standard_attr_id, a router's gw_port_id, ...) from
    what the plugin returns. Without a map, ``obj`` unchanged."""
    if not attribute_map:
        return obj
    shaped = {}
    for name, value in obj.items():
        spec = attribute_map.get(name)
        if spec is None and name == 'project_id':
            spec = attribute_map.get('tenant_id')
        if spec and spec.get('is_visible'):
            shaped[name] = value
    return shaped


def encode(obj):
    """One canonical JSON text per object, so equal objects compare equal
    as text and a resync can tell what changed without parsing etcd."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
                      default=str)


def decode(value):
    if isinstance(value, bytes):
        value = value.decode('utf-8')
    return json.loads(value)


def revision(obj):
    """Neutron's revision_number of an object (-1 if it has none)."""
    try:
        return int(obj.get('revision_number', -1))
    except (TypeError, ValueError):
        return -1


def should_replace(new_obj, old_value):
    """Whether ``new_obj`` may overwrite what etcd holds (``old_value``, the
    stored text, or None when the key is absent).

    Writes come from several threads (API requests, status updates, the
    resync); Neutron's revision_number orders them: an older revision never
    overwrites a newer one, an equal one only when it differs.
    """
    if old_value is None:
        return True
    new_text = encode(new_obj)
    if isinstance(old_value, bytes):
        old_value = old_value.decode('utf-8')
    if new_text == old_value:
        return False
    try:
        old_obj = decode(old_value)
    except ValueError:
        return True
    if not isinstance(old_obj, dict):
        return True
    return revision(new_obj) >= revision(old_obj)


def diff(desired, actual):
    """What a resync writes.

    ``desired``: {key: JSON text} from Neutron's database.
    ``actual``: {key: (JSON text, mod_revision)} read from etcd under the
    neutron prefix.

    Returns (puts, deletes): puts as [(key, text, mod_revision or 0 when
    absent)], deletes as [(key, mod_revision)], each sorted by key. The
    mod_revisions let the writes be conditional: nothing is overwritten or
    deleted that changed after it was read.
    """
    puts = []
    for key in sorted(desired):
        text = desired[key]
        held = actual.get(key)
        if held is None:
            puts.append((key, text, 0))
        elif held[0] != text:
            puts.append((key, text, held[1]))
    deletes = [(key, actual[key][1]) for key in sorted(actual)
               if key not in desired]
    return puts, deletes


def binding_matches(binding, port):
    """Whether an agent's binding record says ``port``'s tap is attached on
    the host the port is bound to."""
    if not binding or not port:
        return False
    host = port.get('binding:host_id')
    return bool(host) and binding.get('chassis') == host


def prefix_end(prefix):
    """The range end that covers every key starting with ``prefix``."""
    raw = bytearray(prefix.encode('utf-8'))
    while raw:
        if raw[-1] < 0xff:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b'\0'
