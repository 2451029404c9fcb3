//! The topology as a Graphviz graph: a cluster per network (its subnets in
//! the label) holding its ports, its shared addresses (an edge to each
//! member, bold and labelled to the active one) and its router interfaces;
//! routers outside, joined to their interfaces. Ports that dropped frames
//! are red; ports on other hosts dashed.

use std::fmt::Write as _;

use super::{NetworkNode, PortNode, TopologyView, label};

/// A DOT string literal.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn render_dot(v: &TopologyView) -> String {
    let mut s = String::from("digraph dataplane {\n");
    let title = format!(
        "dataplane instance {}, generation {}",
        v.instance, v.generation
    );
    let _ = writeln!(
        s,
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];",
        q(&title)
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for (i, n) in v.networks.iter().enumerate() {
        network(&mut s, i, n);
    }
    for (i, r) in v.routers.iter().enumerate() {
        let _ = writeln!(
            s,
            "  \"r{i}\" [shape=diamond, style=filled, fillcolor=lightblue, label={}];",
            q(&format!("router {}", label(&r.name, &r.id)))
        );
        for (j, (net, subnet)) in r.interfaces.iter().enumerate() {
            let Some(n) = v.networks.iter().position(|n| &n.id == net) else {
                continue;
            };
            let _ = writeln!(
                s,
                "  \"r{i}i{j}\" [shape=circle, fixedsize=false, label={}];",
                q(subnet)
            );
            // The interface node sits in its network's cluster.
            let _ = writeln!(s, "  subgraph \"cluster_n{n}\" {{ \"r{i}i{j}\"; }}");
            let _ = writeln!(s, "  \"r{i}\" -> \"r{i}i{j}\" [dir=none];");
        }
    }
    s.push_str("}\n");
    s
}

fn network(s: &mut String, i: usize, n: &NetworkNode) {
    let mut title = format!("network {}", label(&n.name, &n.id));
    for sub in &n.subnets {
        title.push('\n');
        title.push_str(sub);
    }
    let _ = writeln!(s, "  subgraph \"cluster_n{i}\" {{");
    let _ = writeln!(s, "    label={}; style=rounded; color=gray40;", q(&title));
    for (j, p) in n.ports.iter().enumerate() {
        let _ = writeln!(s, "    \"n{i}p{j}\" [{}];", port_attrs(p));
    }
    for (k, g) in n.groups.iter().enumerate() {
        let _ = writeln!(
            s,
            "    \"n{i}g{k}\" [shape=ellipse, style=filled, fillcolor=lightyellow, label={}];",
            q(&format!("shared\n{}", g.address))
        );
        for m in &g.members {
            let Some(j) = n.ports.iter().position(|p| &p.id == m) else {
                continue;
            };
            let attrs = if g.active.as_deref() == Some(m) {
                "style=bold, color=darkgreen, label=\"active\""
            } else {
                "style=dashed, color=gray50"
            };
            let _ = writeln!(s, "    \"n{i}g{k}\" -> \"n{i}p{j}\" [{attrs}];");
        }
    }
    s.push_str("  }\n");
}

fn port_attrs(p: &PortNode) -> String {
    let mut text = label(&p.name, &p.id);
    let mut style = "rounded";
    let mut color = "black";
    match &p.chassis {
        Some(c) => {
            text.push_str(&format!("\n{}\non {c}", p.mac));
            style = "rounded,dashed";
        }
        None => {
            text.push_str(&format!("\n{}  {}", p.tap, p.mac));
            for ip in &p.fixed_ips {
                text.push_str(&format!("\n{ip}"));
            }
            if !p.pairs.is_empty() {
                text.push_str(&format!("\npairs {}", p.pairs.join(" ")));
            }
            if p.drops > 0 {
                text.push_str(&format!("\ndrops {}", p.drops));
                color = "red";
            }
        }
    }
    format!(
        "shape=box, style={q_style}, color={color}, label={}",
        q(&text),
        q_style = q(style)
    )
}
