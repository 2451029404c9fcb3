//! The fields Neutron returns for each resource that this datapath does not
//! use: accepted and ignored, so that what Neutron prints loads. Any other
//! field is refused, because a misspelt security field silently ignored is
//! a hole.
//!
//! Collected from neutron-lib's API definitions (every visible attribute of
//! `neutron_lib/api/definitions/*.py` and neutron's `extensions/*.py` for
//! the six collections, neutron-lib 5.0 / neutron 29), the standard
//! attributes every one of them carries (`description`, `created_at`,
//! `updated_at`, `revision_number`, `tags` except on rules, `project_id`,
//! `tenant_id`), and the names `openstack … show -f json` prints where they
//! differ from the API's (python-openstackclient 10.x).

/// On every resource (standard attributes and ownership).
const COMMON: &[&str] = &[
    "description",
    "created_at",
    "updated_at",
    "revision_number",
    "project_id",
    "tenant_id",
];

pub const NETWORK: &[&str] = &[
    "admin_state_up",            // network
    "status",                    // network
    "shared",                    // network
    "subnets",                   // network
    "tags",                      // tagging
    "availability_zone_hints",   // network_availability_zone
    "availability_zones",        // network_availability_zone
    "dns_domain",                // dns
    "ipv4_address_scope",        // address_scope
    "ipv6_address_scope",        // address_scope
    "is_default",                // auto_allocated_topology
    "l2_adjacency",              // l2_adjacency
    "project_default",           // project_default_networks
    "provider:network_type",     // provider_net
    "provider:physical_network", // provider_net
    "provider:segmentation_id",  // provider_net
    "segments",                  // multiprovidernet
    "pvlan",                     // pvlan
    "qinq",                      // qinq
    "qos_policy_id",             // qos
    "router:external",           // external_net
    "vlan_transparent",          // vlantransparent
    "is_vlan_qinq",              // openstack network show
    "is_vlan_transparent",       // openstack network show
];

pub const SUBNET: &[&str] = &[
    "allocation_pools",     // subnet
    "host_routes",          // subnet
    "subnetpool_id",        // subnet
    "tags",                 // tagging
    "dns_publish_fixed_ip", // subnet_dns_publish_fixed_ip
    "leak_routes",          // ovn_bgp
    "router:external",      // subnet_external_network
    "segment_id",           // segment
    "service_types",        // subnet_service_types
];

pub const PORT: &[&str] = &[
    "admin_state_up",          // port
    "status",                  // port
    "tags",                    // tagging
    "binding:host_id",         // portbindings
    "binding:profile",         // portbindings
    "binding:vif_details",     // portbindings
    "binding:vif_type",        // portbindings
    "binding:vnic_type",       // portbindings
    "data_plane_status",       // data_plane_status
    "device_profile",          // port_device_profile
    "dns_assignment",          // dns
    "dns_name",                // dns
    "dns_domain",              // dns_domain_ports
    "extra_dhcp_opts",         // extra_dhcp_opt
    "hardware_offload_type",   // port_hardware_offload_type
    "hints",                   // port_hints
    "ip_allocation",           // ip_allocation
    "numa_affinity_policy",    // port_numa_affinity_policy
    "propagate_uplink_status", // uplink_status_propagation
    "pvlan_community",         // pvlan
    "pvlan_type",              // pvlan
    "qos_network_policy_id",   // qos_port_network_policy
    "qos_policy_id",           // qos
    "resource_request",        // port_resource_request
    "trunk_details",           // trunk_details
    "trusted",                 // port_trusted_vif
    "binding_host_id",         // openstack port show
    "binding_profile",         // openstack port show
    "binding_vif_details",     // openstack port show
    "binding_vif_type",        // openstack port show
    "binding_vnic_type",       // openstack port show
];

pub const ROUTER: &[&str] = &[
    "admin_state_up",            // l3
    "status",                    // l3
    "tags",                      // tagging
    "availability_zone_hints",   // router_availability_zone
    "availability_zones",        // router_availability_zone
    "conntrack_helpers",         // expose_l3_conntrack_helper
    "distributed",               // dvr
    "enable_default_route_bfd",  // l3_enable_default_route_bfd
    "enable_default_route_ecmp", // l3_enable_default_route_ecmp
    "enable_ndp_proxy",          // l3_ext_ndp_proxy
    "enable_snat",               // router_enable_snat
    "evpn_vni",                  // evpn
    "flavor_id",                 // l3_flavors
    "ha",                        // l3_ext_ha_mode
    "service_type_id",           // routerservicetype
    "interfaces_info",           // openstack router show
];

pub const FLOATINGIP: &[&str] = &[
    "status",                // l3
    "tags",                  // tagging
    "subnet_id",             // l3 (create only: which subnet to allocate from)
    "dns_domain",            // dns
    "dns_name",              // dns
    "port_details",          // fip_port_details
    "port_forwardings",      // floating_ip_port_forwarding
    "qos_policy_id",         // qos_fip
    "qos_network_policy_id", // qos_fip_network_policy
    "name",                  // openstack floating ip show (the address)
];

pub const SECURITY_GROUP: &[&str] = &[
    "tags",      // tagging
    "shared",    // security_groups_shared_filtering
    "is_shared", // openstack security group show
];

pub const RULE: &[&str] = &[
    "security_group_id",     // securitygroup (checked against its group)
    "belongs_to_default_sg", // security_groups_rules_belongs_to_default_sg
    "normalized_cidr",       // security_groups_normalized_cidr
    // Rules nested in GET /v2.0/security-groups carry these two as well
    // (they are the database row, not filtered like GET
    // /v2.0/security-group-rules).
    "standard_attr_id",
    "tags",
];

/// Whether `field` is one Neutron returns for a resource whose own list is
/// `ignored` (which the datapath does not use).
pub fn known(ignored: &[&str], field: &str) -> bool {
    COMMON.contains(&field) || ignored.contains(&field)
}
