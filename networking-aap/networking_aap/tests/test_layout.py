"""Runs without Neutron or etcd: python3 -m unittest discover -s networking-aap"""

import json
import unittest

from networking_aap import layout


class LayoutTest(unittest.TestCase):
    def test_keys_and_parse(self):
        lay = layout.Layout('/aap/')
        self.assertEqual(lay.key('ports', 'p1'), '/aap/neutron/ports/p1')
        self.assertEqual(lay.key('security_groups', 's'),
                         '/aap/neutron/security_groups/s')
        self.assertEqual(lay.parse('/aap/neutron/networks/n1'),
                         ('networks', 'n1'))
        for bad in ('/aap/neutron/nets/n1', '/aap/neutron/ports/',
                    '/aap/neutron/ports/a/b', '/aap/chassis/h1',
                    '/other/neutron/ports/p'):
            self.assertIsNone(lay.parse(bad), bad)
        self.assertEqual(lay.chassis_key('h1'), '/aap/chassis/h1')
        self.assertEqual(lay.binding_key('p'), '/aap/bindings/p')
        self.assertEqual(lay.name_under(lay.bindings, '/aap/bindings/p'), 'p')
        self.assertIsNone(lay.name_under(lay.bindings, '/aap/bindings/p/x'))
        self.assertEqual(layout.Layout('x').neutron, '/x/neutron/')
        with self.assertRaises(ValueError):
            layout.Layout('/')
        with self.assertRaises(ValueError):
            lay.key('ports', 'a/b')
        with self.assertRaises(ValueError):
            lay.key('widgets', 'a')

    def test_encoding_is_canonical(self):
        a = {'id': 'p', 'fixed_ips': [{'ip_address': '10.0.0.1'}], 'b': 1}
        b = {'b': 1, 'fixed_ips': [{'ip_address': '10.0.0.1'}], 'id': 'p'}
        self.assertEqual(layout.encode(a), layout.encode(b))
        self.assertEqual(json.loads(layout.encode(a)), a)
        self.assertNotIn(' ', layout.encode(a))

    def test_older_revisions_never_overwrite_newer(self):
        old = {'id': 'p', 'revision_number': 3, 'status': 'DOWN'}
        new = {'id': 'p', 'revision_number': 4, 'status': 'ACTIVE'}
        held_new = layout.encode(new).encode()
        self.assertTrue(layout.should_replace(new, None))
        self.assertTrue(layout.should_replace(new, layout.encode(old)))
        self.assertFalse(layout.should_replace(old, held_new))
        self.assertFalse(layout.should_replace(new, held_new), 'unchanged')
        same_rev = dict(new, name='x')
        self.assertTrue(layout.should_replace(same_rev, held_new))
        self.assertTrue(layout.should_replace(new, b'not json'))

    def test_diff_writes_only_differences(self):
        desired = {'/aap/neutron/ports/a': '{"id":"a"}',
                   '/aap/neutron/ports/b': '{"id":"b","x":2}',
                   '/aap/neutron/ports/c': '{"id":"c"}'}
        actual = {'/aap/neutron/ports/a': ('{"id":"a"}', 5),
                  '/aap/neutron/ports/b': ('{"id":"b","x":1}', 6),
                  '/aap/neutron/ports/gone': ('{"id":"gone"}', 7)}
        puts, deletes = layout.diff(desired, actual)
        self.assertEqual(puts, [('/aap/neutron/ports/b', '{"id":"b","x":2}', 6),
                                ('/aap/neutron/ports/c', '{"id":"c"}', 0)])
        self.assertEqual(deletes, [('/aap/neutron/ports/gone', 7)])
        self.assertEqual(layout.diff(desired, {k: (v, 1) for k, v in
                                               desired.items()}), ([], []))

    def test_binding_matches_only_the_bound_host(self):
        port = {'id': 'p', 'binding:host_id': 'h1'}
        self.assertTrue(layout.binding_matches(
            {'chassis': 'h1', 'tap': 'tapp'}, port))
        self.assertFalse(layout.binding_matches({'chassis': 'h2'}, port))
        self.assertFalse(layout.binding_matches(None, port))
        self.assertFalse(layout.binding_matches(
            {'chassis': ''}, {'binding:host_id': ''}))

    def test_api_shape_keeps_visible_attributes_only(self):
        amap = {'id': {'is_visible': True}, 'tenant_id': {'is_visible': True},
                'gw_port_id': {'is_visible': False}, 'name': {}}
        obj = {'id': 'r', 'project_id': 'p', 'gw_port_id': 'g',
               'standard_attr_id': 7, 'name': 'r1'}
        self.assertEqual(layout.api_shape(obj, amap),
                         {'id': 'r', 'project_id': 'p'})
        self.assertIs(layout.api_shape(obj, None), obj)

    def test_prefix_end(self):
        self.assertEqual(layout.prefix_end('/aap/bindings/'),
                         b'/aap/bindings0')
        self.assertEqual(layout.prefix_end('a\xff'.encode('latin-1')
                                           .decode('latin-1')), b'a\xc3\xc0')


if __name__ == '__main__':
    unittest.main()
