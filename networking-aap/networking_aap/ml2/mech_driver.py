"""The ML2 mechanism driver ``aap``: Neutron's objects into etcd for the
aap datapath agents, port binding to hosts whose agent is alive, and port
status from the agents' binding records.

Writes happen in postcommit hooks and AFTER_* callbacks, so Neutron's
transaction has committed first. Each write is conditional (etcd txn on
the key's mod_revision) and never replaces a newer revision_number with an
older one, so concurrent writers (API requests, status updates, a resync)
leave etcd with the newest state.
"""

import queue
import threading
import time
import uuid

from neutron_lib.api import attributes as api_attributes
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events
from neutron_lib.callbacks import registry
from neutron_lib.callbacks import resources
from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log as logging

from networking_aap import config
from networking_aap import layout as aap
from networking_aap import store as aap_store

LOG = logging.getLogger(__name__)

# The agents attach a port's tap and tunnel VXLAN between hosts.
NETWORK_TYPES = ('vxlan',)

# A plain tap; the datapath enforces port security and security groups.
VIF_DETAILS = {
    portbindings.CAP_PORT_FILTER: True,
    portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2,
}


class AapMechanismDriver(api.MechanismDriver):

    def initialize(self):
        self.conf = config.register(cfg.CONF)
        self.layout = aap.Layout(self.conf.prefix)
        self.store = aap_store.Store(self.conf.etcd_url,
                                     timeout=self.conf.etcd_timeout)
        self._tasks = queue.Queue()
        self._resync_wanted = threading.Event()
        self._bindings = {}
        self._bindings_lock = threading.Lock()
        self._bindings_ready = threading.Event()
        self._chassis = set()
        self._threads = []
        for resource, handler in (
                (resources.SECURITY_GROUP, self._security_group_event),
                (resources.SECURITY_GROUP_RULE, self._rule_event),
                (resources.ROUTER, self._router_event),
                (resources.ROUTER_INTERFACE, self._router_event),
                (resources.FLOATING_IP, self._floatingip_event)):
            for event in (events.AFTER_CREATE, events.AFTER_UPDATE,
                          events.AFTER_DELETE):
                registry.subscribe(handler, resource, event)
        registry.subscribe(self._start, resources.PROCESS, events.AFTER_INIT)
        LOG.info('aap driver: etcd %s, prefix %s', self.conf.etcd_url,
                 self.layout.prefix)

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    # -- background work, once the server process has initialised --------

    def _start(self, resource, event, trigger, payload=None):
        if self._threads:
            return
        self._resync_wanted.set()  # a (re)started driver rewrites etcd
        self._threads = [
            threading.Thread(target=self._work, name='aap-worker',
                             daemon=True),
            threading.Thread(target=self._monitor, name='aap-monitor',
                             daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._watchers = [
            aap_store.Watcher(self.store, self.layout.bindings,
                              self._bindings_snapshot, self._binding_event,
                              on_relist=self._resync_check,
                              name='aap-watch-bindings').start(),
            aap_store.Watcher(self.store, self.layout.chassis,
                              self._chassis_snapshot, self._chassis_event,
                              name='aap-watch-chassis').start(),
        ]

    def _monitor(self):
        """Rewrites etcd from the database when asked (start, a failed
        write) or when etcd lost what the driver wrote (no epoch key)."""
        while True:
            self._resync_wanted.wait(self.conf.check_interval)
            try:
                if not self._resync_wanted.is_set() and \
                        self.store.get(self.layout.epoch) is not None:
                    continue
                self._resync_wanted.clear()
                self.resync()
            except Exception as exc:
                LOG.warning('aap driver: resync failed (%s); will retry',
                            exc)
                self._resync_wanted.set()
                time.sleep(1)

    def _resync_check(self):
        # The watch broke (etcd restarted?): check its contents now.
        threading.Thread(target=self._check_epoch, daemon=True).start()

    def _check_epoch(self):
        try:
            if self.store.get(self.layout.epoch) is None:
                self._resync_wanted.set()
        except Exception:
            self._resync_wanted.set()

    def _work(self):
        while True:
            task, arg = self._tasks.get()
            try:
                if task == 'port':
                    self._bindings_ready.wait()
                    self._reconcile_status(arg)
                elif task == 'all_ports':
                    self._bindings_ready.wait()
                    for port in self._plugin().get_ports(self._admin()):
                        self._reconcile_status(port['id'], port)
                elif task == 'host':
                    self._rebind_host(arg)
            except Exception:
                LOG.exception('aap driver: %s %s failed', task, arg)

    @staticmethod
    def _admin():
        return n_context.get_admin_context()

    @staticmethod
    def _plugin():
        return directory.get_plugin()

    # -- writes ---------------------------------------------------------

    @staticmethod
    def _api_shape(kind, obj):
        """As the API returns it to an admin: the plugin's dicts carry
        attributes the API never shows (standard_attr_id, a router's
        gw_port_id, ...); a group's nested rules are left as the API
        leaves them."""
        return aap.api_shape(obj, api_attributes.RESOURCES.get(kind))

    def _write(self, kind, obj):
        obj = self._api_shape(kind, obj)
        key = self.layout.key(kind, obj['id'])
        started = time.monotonic()
        try:
            wrote = self.store.put_if(
                key, lambda held: aap.should_replace(obj, held),
                aap.encode(obj))
        except Exception as exc:
            LOG.warning('aap driver: writing %s failed (%s): a resync '
                        'will follow', key, exc)
            self._resync_wanted.set()
            return
        LOG.debug('aap driver: %s %s (rev %s) in %.1f ms', key,
                  'written' if wrote else 'unchanged', aap.revision(obj),
                  (time.monotonic() - started) * 1000)

    def _remove(self, kind, resource_id):
        key = self.layout.key(kind, resource_id)
        try:
            self.store.delete(key)
        except Exception as exc:
            LOG.warning('aap driver: deleting %s failed (%s): a resync '
                        'will follow', key, exc)
            self._resync_wanted.set()

    def resync(self):
        """Rewrites <prefix>/neutron/ from the database: writes what
        differs, deletes what Neutron no longer has, and leaves everything
        else (chassis, bindings) alone. Unchanged objects are not written,
        so the agents see no change for them and traffic is undisturbed."""
        started = time.monotonic()
        # List etcd first: a key written after this listing is newer than
        # it and is neither deleted nor overwritten (conditional writes).
        _, held = self.store.range(self.layout.neutron, prefix=True)
        actual = {k: (v.decode('utf-8', 'replace'), m)
                  for k, (v, m) in held.items()}
        desired = {}
        for kind, objs in self._all_objects():
            for obj in objs:
                obj = self._api_shape(kind, obj)
                desired[self.layout.key(kind, obj['id'])] = aap.encode(obj)
        puts, deletes = aap.diff(desired, actual)
        skipped = self.store.apply_conditional(puts, deletes)
        self.store.put(self.layout.epoch, uuid.uuid4().hex)
        LOG.info('aap driver: resync of %d objects: %d written, %d '
                 'deleted, %d changed meanwhile, in %.0f ms', len(desired),
                 len(puts), len(deletes), len(skipped),
                 (time.monotonic() - started) * 1000)
        return puts, deletes

    def _all_objects(self):
        ctx = self._admin()
        plugin = self._plugin()
        yield aap.NETWORKS, plugin.get_networks(ctx)
        yield aap.SUBNETS, plugin.get_subnets(ctx)
        yield aap.PORTS, plugin.get_ports(ctx)
        # One by one: the list call shapes the rules differently from
        # GET /security-groups/<id> (belongs_to_default_sg), which the
        # callbacks write.
        yield aap.SECURITY_GROUPS, (
            sg for sg in (self._read_security_group(ctx, s['id']) for s in
                          plugin.get_security_groups(ctx, fields=['id']))
            if sg is not None)
        l3 = directory.get_plugin(plugin_constants.L3)
        if l3 is not None:
            yield aap.ROUTERS, l3.get_routers(ctx)
            yield aap.FLOATINGIPS, l3.get_floatingips(ctx)

    # -- ML2 hooks ------------------------------------------------------

    # Objects are read back through the plugin, as the API shows them:
    # context.current lacks a network's subnets list and carries a
    # subnet's whole network, and a subnet change also changes its network
    # (subnets, revision_number) without a network hook.

    def create_network_postcommit(self, context):
        self._write_read_back(aap.NETWORKS, context.current)

    def update_network_postcommit(self, context):
        self._write_read_back(aap.NETWORKS, context.current)

    def delete_network_postcommit(self, context):
        self._remove(aap.NETWORKS, context.current['id'])

    def create_subnet_postcommit(self, context):
        self._write_read_back(aap.SUBNETS, context.current)
        self._write_read_back(aap.NETWORKS,
                              {'id': context.current['network_id']})

    def update_subnet_postcommit(self, context):
        self._write_read_back(aap.SUBNETS, context.current)

    def delete_subnet_postcommit(self, context):
        self._remove(aap.SUBNETS, context.current['id'])
        self._write_read_back(aap.NETWORKS,
                              {'id': context.current['network_id']})

    def _write_read_back(self, kind, obj):
        getter = {aap.NETWORKS: self._plugin().get_network,
                  aap.SUBNETS: self._plugin().get_subnet,
                  aap.PORTS: self._plugin().get_port}[kind]
        try:
            fresh = getter(self._admin(), obj['id'])
        except n_exc.NotFound:
            return  # deleted meanwhile: its delete hook removes it
        self._write(kind, fresh)

    # Ports too: the API adds the binding's drivers to
    # binding:vif_details, which context.current lacks.

    def create_port_postcommit(self, context):
        self._write_read_back(aap.PORTS, context.current)

    def update_port_postcommit(self, context):
        port = context.current
        self._write_read_back(aap.PORTS, port)
        if port.get(portbindings.VIF_TYPE) == portbindings.VIF_TYPE_TAP:
            # Bound (or rebound): ACTIVE if its tap is attached already.
            with self._bindings_lock:
                binding = self._bindings.get(port['id'])
            want = (n_const.PORT_STATUS_ACTIVE
                    if aap.binding_matches(binding, port)
                    else n_const.PORT_STATUS_DOWN)
            if port.get('status') != want:
                self._tasks.put(('port', port['id']))

    def delete_port_postcommit(self, context):
        self._remove(aap.PORTS, context.current['id'])

    # -- callbacks: security groups, routers and floating IPs bypass ML2's
    # hooks -------------------------------------------------------------

    def _security_group_event(self, resource, event, trigger, payload):
        if event == events.AFTER_DELETE:
            self._remove(aap.SECURITY_GROUPS, payload.resource_id)
        else:
            self._write_security_group(payload.resource_id,
                                       payload.latest_state)

    def _rule_event(self, resource, event, trigger, payload):
        if event == events.AFTER_DELETE:
            sg_id = (payload.metadata or {}).get('security_group_id')
        else:
            sg_id = (payload.latest_state or {}).get('security_group_id')
        if sg_id:
            self._write_security_group(sg_id)

    def _read_security_group(self, ctx, sg_id):
        try:
            return self._plugin().get_security_group(ctx, sg_id)
        except n_exc.NotFound:
            return None

    def _write_security_group(self, sg_id, fallback=None):
        """Rewrites the whole group, rules nested, as the API shows it."""
        sg = self._read_security_group(self._admin(), sg_id)
        if sg is None:
            # Deleted meanwhile, or not committed yet (a default group
            # created inside another transaction): the event's own copy.
            if not fallback or 'security_group_rules' not in fallback:
                return
            sg = fallback
        self._write(aap.SECURITY_GROUPS, sg)

    def _router_event(self, resource, event, trigger, payload):
        # An interface added or removed changes the router's revision.
        if event == events.AFTER_DELETE and resource == resources.ROUTER:
            self._remove(aap.ROUTERS, payload.resource_id)
            return
        l3 = directory.get_plugin(plugin_constants.L3)
        try:
            router = l3.get_router(self._admin(), payload.resource_id)
        except n_exc.NotFound:
            return
        self._write(aap.ROUTERS, router)

    def _floatingip_event(self, resource, event, trigger, payload):
        # Floating IPs belong to the L3 plugin, not to ML2: its callbacks
        # tell creation, (dis)association and deletion.
        if event == events.AFTER_DELETE:
            self._remove(aap.FLOATINGIPS, payload.resource_id)
            return
        l3 = directory.get_plugin(plugin_constants.L3)
        try:
            fip = l3.get_floatingip(self._admin(), payload.resource_id)
        except n_exc.NotFound:
            return
        self._write(aap.FLOATINGIPS, fip)

    # -- binding ---------------------------------------------------------

    def bind_port(self, context):
        """Binds to the host only while its agent is alive (its chassis
        record exists); otherwise ML2 leaves the port binding_failed, and
        the driver retries when the chassis appears."""
        host = context.host
        try:
            alive = self.store.get(self.layout.chassis_key(host)) is not None
        except Exception as exc:
            LOG.warning('aap driver: cannot read chassis %s (%s): port %s '
                        'not bound', host, exc, context.current['id'])
            return
        if not alive:
            LOG.info('aap driver: port %s not bound: no live chassis %s',
                     context.current['id'], host)
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in NETWORK_TYPES:
                context.set_binding(segment[api.ID],
                                    portbindings.VIF_TYPE_TAP,
                                    dict(VIF_DETAILS))
                return
        LOG.info('aap driver: port %s not bound: no segment of type %s',
                 context.current['id'], '/'.join(NETWORK_TYPES))

    def _chassis_snapshot(self, kvs):
        names = {self.layout.name_under(self.layout.chassis, k) for k in kvs}
        names.discard(None)
        for name in sorted(names - self._chassis):
            self._tasks.put(('host', name))
        self._chassis = names

    def _chassis_event(self, key, value, prev):
        name = self.layout.name_under(self.layout.chassis, key)
        if name is None:
            return
        if value is None:
            self._chassis.discard(name)
        elif prev is None:
            self._chassis.add(name)
            self._tasks.put(('host', name))

    def _rebind_host(self, host):
        """A chassis appeared: bind the ports that failed to bind to it."""
        ctx = self._admin()
        plugin = self._plugin()
        for port in plugin.get_ports(
                ctx, filters={portbindings.HOST_ID: [host]}):
            if port.get(portbindings.VIF_TYPE) == \
                    portbindings.VIF_TYPE_BINDING_FAILED:
                LOG.info('aap driver: chassis %s is up: binding port %s',
                         host, port['id'])
                plugin.update_port(
                    ctx, port['id'], {'port': {portbindings.HOST_ID: host}})

    # -- status: ACTIVE while the agent has the tap attached -------------

    def _bindings_snapshot(self, kvs):
        fresh = {}
        for key, value in kvs.items():
            port_id = self.layout.name_under(self.layout.bindings, key)
            if port_id:
                fresh[port_id] = self._parse_binding(value)
        with self._bindings_lock:
            self._bindings = fresh
        self._bindings_ready.set()
        self._tasks.put(('all_ports', None))

    def _binding_event(self, key, value, prev):
        port_id = self.layout.name_under(self.layout.bindings, key)
        if port_id is None:
            return
        with self._bindings_lock:
            if value is None:
                self._bindings.pop(port_id, None)
            else:
                self._bindings[port_id] = self._parse_binding(value)
        self._tasks.put(('port', port_id))

    @staticmethod
    def _parse_binding(value):
        try:
            binding = aap.decode(value)
            return binding if isinstance(binding, dict) else {}
        except ValueError:
            return {}

    def _reconcile_status(self, port_id, port=None):
        ctx = self._admin()
        plugin = self._plugin()
        if port is None:
            try:
                port = plugin.get_port(ctx, port_id)
            except n_exc.PortNotFound:
                return
        if port.get(portbindings.VIF_TYPE) != portbindings.VIF_TYPE_TAP:
            return  # not bound by this driver
        with self._bindings_lock:
            binding = self._bindings.get(port_id)
        want = (n_const.PORT_STATUS_ACTIVE
                if aap.binding_matches(binding, port)
                else n_const.PORT_STATUS_DOWN)
        if port['status'] != want:
            LOG.info('aap driver: port %s %s', port_id, want)
            plugin.update_port_status(ctx, port_id, want,
                                      port.get(portbindings.HOST_ID))
