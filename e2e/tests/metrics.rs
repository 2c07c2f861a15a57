//! `/metrics` after real traffic: valid Prometheus text, every documented series present,
//! nothing undocumented, and the dashboard and alert rules in `deploy/` use only documented
//! names.

use std::{collections::BTreeSet, time::Duration};

use plexus_e2e::{http_get, wait_until, Broker, Mesh, TestDb};

fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `plexus_"))
        .map(|rest| format!("plexus_{}", rest.split('`').next().unwrap()))
        .collect()
}

/// Every `plexus_*` name in `text`, with histogram suffixes folded into the family name.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("plexus_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
            }
        }
        out.insert(name.to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_match_the_documented_vocabulary() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let follower = bo.spawn_json(&["inbox", "--follow"]);
    ana.json(&["send", "bo", "hello", "--priority", "now"]);
    assert!(follower.wait_text("hello", Duration::from_secs(20)).await);
    ana.json(&["lock", "acquire", "src/**"]);
    ana.json(&["remind", "add", "soon", "--in", "1s"]);
    assert!(wait_until(Duration::from_secs(20), || {
        let (_, m) = http_get(node.port, "/metrics")?;
        m.lines().any(|l| l.starts_with("plexus_reminder_lateness_seconds_count 1")).then_some(())
    })
    .await
    .is_some());

    let (status, text) = http_get(node.port, "/metrics").unwrap();
    assert_eq!(status, 200);
    // Text format: HELP/TYPE comments, then `name{labels} value` samples with numeric values.
    let mut typed = BTreeSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value), "bad value: {line}");
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "bad labels: {line}");
        }
    }

    let documented = documented();
    assert!(documented.len() >= 20, "docs/metrics.md lists {documented:?}");
    let exported: BTreeSet<String> = names_in(&text).into_iter().filter(|n| n.starts_with("plexus_")).collect();
    let missing: Vec<_> = documented.difference(&exported).collect();
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    assert!(missing.is_empty(), "documented but not exported: {missing:?}");
    assert!(undocumented.is_empty(), "exported but not documented: {undocumented:?}");
    assert!(typed.iter().filter(|n| n.starts_with("plexus_")).all(|n| documented.contains(n)));
    // The sample counters moved.
    assert!(text.lines().any(|l| l.starts_with("plexus_messages_routed_total{") && !l.ends_with(" 0")));
    assert!(text.lines().any(|l| l.starts_with("plexus_lock_wait_seconds_count") && !l.ends_with(" 0")));

    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/plexus-dashboard.json"] {
        let body = std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let used = names_in(&body);
        let unknown: Vec<_> = used.difference(&documented).collect();
        assert!(unknown.is_empty(), "{file} uses undocumented metrics {unknown:?}");
    }
}

#[test]
fn the_operations_guide_embeds_the_current_default_config() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md")).unwrap();
    let block = guide.split("```toml\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a toml block");
    let out = std::process::Command::new(plexus_e2e::bin("plexus-broker")).arg("default-config").output().unwrap();
    let current = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        block.trim_end(),
        current.trim_end(),
        "docs/operations.md is stale: paste `plexus-broker default-config`"
    );
}
