"""The driver's options: the ``[aap]`` section of ml2_conf.ini."""

from oslo_config import cfg

GROUP = 'aap'

OPTS = [
    cfg.StrOpt('etcd_url', default='http://127.0.0.1:2379',
               help='The etcd the agents watch (v3 API, etcd >= 3.4), '
                    'as http(s)://HOST:PORT.'),
    cfg.StrOpt('prefix', default='/aap',
               help='The prefix of every key the driver reads or writes.'),
    cfg.FloatOpt('etcd_timeout', default=5.0,
                 help='Seconds an etcd request may take.'),
    cfg.FloatOpt('check_interval', default=10.0,
                 help='Seconds between checks that etcd still holds what '
                      'the driver wrote (its epoch key); when it does not '
                      '(etcd lost its data) or a write failed, the driver '
                      'rewrites everything from the database.'),
]


def register(conf=cfg.CONF):
    conf.register_opts(OPTS, group=GROUP)
    return conf[GROUP]


def list_opts():
    """For oslo-config-generator."""
    return [(GROUP, OPTS)]
