"""etcd access through etcd3gw (etcd's v3 gRPC gateway over HTTP).

etcd3gw gives the transport, the base64 encoding and the API path; the
calls that need the response header (range with the revision, txn) or a
watch that survives etcd restarts are written here on top of it.
"""

import base64
import json
import logging
import threading
import urllib.parse

import etcd3gw
import requests

from networking_aap.layout import prefix_end

LOG = logging.getLogger(__name__)

# etcd refuses transactions with more operations (--max-txn-ops).
MAX_TXN_OPS = 128


def _b64(data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    return base64.b64encode(data).decode('ascii')


def _unb64(data):
    return base64.b64decode(data) if data else b''


class Store:
    def __init__(self, url, timeout=5):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError('etcd URL must be http(s)://HOST:PORT, not %r'
                             % (url,))
        self.url = url
        self.timeout = timeout
        self.client = etcd3gw.client(
            host=parsed.hostname, port=parsed.port or 2379,
            protocol=parsed.scheme, timeout=timeout)

    def _post(self, path, payload):
        return self.client.post(self.client.get_url(path), json=payload)

    def range(self, key, prefix=False):
        """(header, {key: (value bytes, mod_revision)})."""
        payload = {'key': _b64(key)}
        if prefix:
            payload['range_end'] = _b64(prefix_end(key))
        result = self._post('/kv/range', payload)
        kvs = {}
        for kv in result.get('kvs', []):
            kvs[_unb64(kv['key']).decode('utf-8')] = (
                _unb64(kv.get('value')), int(kv.get('mod_revision', 0)))
        return result.get('header', {}), kvs

    def get(self, key):
        _, kvs = self.range(key)
        held = kvs.get(key)
        return held[0] if held else None

    def put(self, key, value, lease=None):
        payload = {'key': _b64(key), 'value': _b64(value)}
        if lease:
            payload['lease'] = lease
        self._post('/kv/put', payload)

    def delete(self, key):
        self._post('/kv/deleterange', {'key': _b64(key)})

    def txn(self, compares, success):
        result = self.client.post(self.client.get_url('/kv/txn'),
                                  data=json.dumps({'compare': compares,
                                                   'success': success,
                                                   'failure': []}))
        return bool(result.get('succeeded'))

    @staticmethod
    def unchanged_since(key, mod_revision):
        """A txn compare: ``key`` was last written at ``mod_revision`` (0:
        it does not exist)."""
        if mod_revision:
            return {'key': _b64(key), 'result': 'EQUAL', 'target': 'MOD',
                    'mod_revision': str(mod_revision)}
        return {'key': _b64(key), 'result': 'EQUAL', 'target': 'VERSION',
                'version': '0'}

    @staticmethod
    def put_op(key, value):
        return {'request_put': {'key': _b64(key), 'value': _b64(value)}}

    @staticmethod
    def delete_op(key):
        return {'request_delete_range': {'key': _b64(key)}}

    def put_if(self, key, should_replace, value, tries=10):
        """Writes ``value`` unless ``should_replace(current value or None)``
        says no; atomic against concurrent writers (compare-and-swap on the
        key's mod_revision). Returns whether it wrote."""
        for _ in range(tries):
            _, kvs = self.range(key)
            current, mod = kvs.get(key, (None, 0))
            if not should_replace(current):
                return False
            if self.txn([self.unchanged_since(key, mod)],
                        [self.put_op(key, value)]):
                return True
        raise RuntimeError('etcd: %s kept changing under a write' % key)

    def apply_conditional(self, puts, deletes):
        """Puts [(key, value, mod_revision)] and deletes [(key,
        mod_revision)], each only if the key is unchanged since that
        revision, in transactions of at most MAX_TXN_OPS operations.
        Returns the keys skipped because they changed meanwhile."""
        ops = [(k, v, m) for k, v, m in puts] + \
              [(k, None, m) for k, m in deletes]
        skipped = []
        for i in range(0, len(ops), MAX_TXN_OPS // 2):
            batch = ops[i:i + MAX_TXN_OPS // 2]
            compares = [self.unchanged_since(k, m) for k, _, m in batch]
            success = [self.put_op(k, v) if v is not None
                       else self.delete_op(k) for k, v, _ in batch]
            if self.txn(compares, success):
                continue
            # Someone wrote one of these keys meanwhile: one at a time.
            for k, v, m in batch:
                op = self.put_op(k, v) if v is not None else self.delete_op(k)
                if not self.txn([self.unchanged_since(k, m)], [op]):
                    skipped.append(k)
        return skipped


class Watcher:
    """Keeps a view of one prefix: lists it, then follows a watch from the
    listed revision; when the stream breaks (etcd restarted, compaction)
    it lists again. ``on_snapshot(kvs)`` gets {key: value bytes} after each
    listing, ``on_event(key, value or None, prev or None)`` each change.
    ``on_relist()`` is called before every listing but the first."""

    def __init__(self, store, prefix, on_snapshot, on_event,
                 on_relist=None, name=None):
        self.store = store
        self.prefix = prefix
        self.on_snapshot = on_snapshot
        self.on_event = on_event
        self.on_relist = on_relist
        self._stop = threading.Event()
        self._response = None
        self._thread = threading.Thread(
            target=self._run, name=name or 'aap-watch', daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: S110
                pass

    def _run(self):
        backoff = 0.2
        first = True
        while not self._stop.is_set():
            try:
                if not first and self.on_relist:
                    self.on_relist()
                first = False
                header, kvs = self.store.range(self.prefix, prefix=True)
                self.on_snapshot({k: v for k, (v, _) in kvs.items()})
                backoff = 0.2
                self._follow(int(header.get('revision', 0)) + 1)
            except Exception as exc:  # etcd down, stream broken
                if self._stop.is_set():
                    return
                LOG.info('etcd watch of %s: %s; retrying', self.prefix, exc)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _follow(self, start_revision):
        store = self.store
        create = {'key': _b64(self.prefix),
                  'range_end': _b64(prefix_end(self.prefix)),
                  'start_revision': str(start_revision),
                  'prev_kv': True}
        session = requests.Session()
        try:
            self._response = session.post(
                store.client.get_url('/watch'),
                json={'create_request': create}, stream=True,
                timeout=(store.timeout, None))
            if self._response.status_code != 200:
                raise RuntimeError('watch: HTTP %s'
                                   % self._response.status_code)
            # chunk_size=None: hand over each message as it arrives.
            for line in self._response.iter_lines(chunk_size=None):
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                result = json.loads(line).get('result', {})
                if result.get('canceled') or \
                        int(result.get('compact_revision', 0) or 0):
                    raise RuntimeError('watch canceled (compaction?)')
                for event in result.get('events', []):
                    kv = event['kv']
                    key = _unb64(kv['key']).decode('utf-8')
                    prev = event.get('prev_kv')
                    prev_value = _unb64(prev.get('value')) if prev else None
                    if event.get('type') == 'DELETE':
                        self.on_event(key, None, prev_value)
                    else:
                        self.on_event(key, _unb64(kv.get('value')),
                                      prev_value)
            raise RuntimeError('watch stream ended')
        finally:
            self._response = None
            session.close()

