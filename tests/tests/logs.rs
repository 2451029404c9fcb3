//! Logs for people and for log collectors: text by default, one JSON
//! object a line with `--log-format json` or DATAPLANE_LOG_FORMAT=json
//! (the agent's JSON logs are checked in `observe_netns.rs`).

use lab::netns::run;
use serde_json::Value;

#[test]
fn text_logs_by_default_and_json_on_request() {
    // `check` logs what it leaves out (a floating IP's port here) through
    // the same subscriber as the agent.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "networks": [{"id": "n"}],
            "subnets": [{"id": "s", "network_id": "n", "cidr": "10.41.0.0/24"}],
            "ports": [{"id": "gw", "network_id": "n", "mac_address": "fa:16:3e:41:00:01",
                       "device_owner": "network:floatingip",
                       "fixed_ips": [{"subnet_id": "s", "ip_address": "10.41.0.5"}]}],
        })
        .to_string(),
    )
    .unwrap();
    let check = |flag: Option<&str>, env: Option<&str>| {
        let mut c = std::process::Command::new(lab::lab::dataplane_bin());
        c.args(flag.map(|f| ["--log-format", f]).into_iter().flatten());
        c.args(["check", "--skip-interfaces", "--config"]).arg(&cfg);
        c.env_remove("DATAPLANE_LOG_FORMAT");
        if let Some(f) = env {
            c.env("DATAPLANE_LOG_FORMAT", f);
        }
        String::from_utf8(run(&mut c).unwrap().stderr).unwrap()
    };
    let text = check(None, None);
    assert!(text.contains("INFO") || text.contains("WARN"), "{text}");
    assert!(serde_json::from_str::<Value>(text.lines().next().unwrap()).is_err());
    let json = check(Some("json"), None);
    // The environment (what the systemd unit's environment file sets)
    // says the same.
    assert_eq!(
        check(None, Some("json")).lines().count(),
        json.lines().count()
    );
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "check logged nothing");
    assert!(
        lines
            .iter()
            .any(|v| v["message"].as_str().is_some_and(|m| m.contains("gw"))),
        "{json}"
    );
}
