//! A short real run of `streambus-loadgen` against a StreamBus broker started in this process:
//! its JSON parses, everything produced is acknowledged and consumed, percentiles are ordered,
//! and the plot, `.hgrm` and `compare` outputs work.

use std::process::Command;

use serde_json::Value;
use streambus::config::BrokerConfig;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streambus-loadgen"))
        .args(args)
        .output()
        .expect("run streambus-loadgen")
}

fn number(report: &Value, path: &str) -> f64 {
    let mut value = report;
    for key in path.split('.') {
        value = &value[key];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{path} missing in {report}"))
}

fn assert_ordered(report: &Value, prefix: &str) {
    let keys = ["p50", "p90", "p99", "p999", "p9999", "max"];
    let values: Vec<f64> = keys
        .iter()
        .map(|key| number(report, &format!("{prefix}.{key}")))
        .collect();
    assert!(values[0] > 0.0, "{prefix}: {values:?}");
    assert!(
        values.windows(2).all(|pair| pair[0] <= pair[1]),
        "{prefix}: {values:?}"
    );
}

#[test]
fn short_run_reports_consistent_figures() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let broker = streambus::broker::start(BrokerConfig {
        data_dir: directory.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 2,
        io_memory_bytes_per_shard: 4 << 20,
        ..BrokerConfig::default()
    })
    .expect("broker");
    let bootstrap = broker.bootstrap.to_string();
    let json = directory.path().join("run.json");
    let plot = directory.path().join("run.svg");
    let hgrm = directory.path().join("run.hgrm");
    let output = loadgen(&[
        "--bootstrap",
        &bootstrap,
        "--topic",
        "smoke",
        "--partitions",
        "4",
        "--scenario",
        "e2e",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("send→ack") && stdout.contains("end-to-end"),
        "{stdout}"
    );
    assert!(
        stderr.contains("produce") && stderr.contains("MB/s"),
        "progress lines: {stderr}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json"))
        .expect("the report parses");
    let attempted = number(&report, "produce.attempted");
    let acknowledged = number(&report, "produce.messages");
    let consumed = number(&report, "consume.messages");
    assert!(attempted >= 3_000.0, "{report}");
    assert_eq!(attempted, acknowledged);
    assert_eq!(acknowledged, consumed);
    assert_eq!(number(&report, "errors"), 0.0);
    assert!(number(&report, "produce.msgs_per_s") > 1_000.0);
    assert!(number(&report, "produce.bytes") >= acknowledged * 1024.0);
    assert_ordered(&report, "produce.latency_us");
    assert_ordered(&report, "e2e.latency_us");
    assert!(report["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(report["host"]["cores"]
        .as_u64()
        .is_some_and(|cores| cores >= 1));
    assert_eq!(report["params"]["rate"].as_u64(), Some(2000));
    let svg = std::fs::read_to_string(&plot).expect("plot");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let distribution = std::fs::read_to_string(&hgrm).expect("hgrm");
    assert!(distribution.contains("Percentile") && distribution.contains("#[Max"));
    // compare: the run against itself gives ratios of 1.
    let compared = loadgen(&["compare", json.to_str().unwrap(), json.to_str().unwrap()]);
    assert!(compared.status.success());
    let table = String::from_utf8_lossy(&compared.stdout);
    assert!(
        table.contains("produce MB/s") && table.contains("1.000"),
        "{table}"
    );
    broker.stop();
    broker.join().expect("broker stops cleanly");
}

#[test]
fn bad_flags_are_refused() {
    let output = loadgen(&["--message-bytes", "4"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 8"));
    let output = loadgen(&["--acks", "0", "--consumers", "1"]);
    assert!(!output.status.success());
}

#[test]
fn group_consumers_share_the_topic_and_consume_everything() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let broker = streambus::broker::start(BrokerConfig {
        data_dir: directory.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 2,
        io_memory_bytes_per_shard: 4 << 20,
        ..BrokerConfig::default()
    })
    .expect("broker");
    let bootstrap = broker.bootstrap.to_string();
    let json = directory.path().join("group.json");
    let output = loadgen(&[
        "--bootstrap",
        &bootstrap,
        "--topic",
        "grouped",
        "--partitions",
        "6",
        "--consumers",
        "3",
        "--group",
        "loadgen-smoke",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json"))
        .expect("the report parses");
    let acknowledged = number(&report, "produce.messages");
    assert!(acknowledged >= 3_000.0, "{report}");
    assert_eq!(
        acknowledged,
        number(&report, "consume.messages"),
        "the group's three members together read every message once"
    );
    assert_eq!(number(&report, "errors"), 0.0);
    assert_eq!(report["params"]["group"], "loadgen-smoke", "{report}");
}
