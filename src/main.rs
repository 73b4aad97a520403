//! The `streambus` broker binary: flags over an optional TOML file, then one shard per core
//! until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use streambus::config::BrokerConfig;

/// How often the main thread checks for a signal or a shard that ended on its own.
const MAIN_POLL_INTERVAL_MS: u64 = 50;

/// StreamBus: a thread-per-core streaming broker that speaks the Kafka protocol.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Flags {
    /// Data directory [default: ./streambus-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Bootstrap listener; shard s also listens on PORT+1+s [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Number of shards, one pinned executor each [default: one per core]
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Host name or address that Metadata advertises to clients
    #[arg(long, value_name = "HOST")]
    advertised_host: Option<String>,
    /// TOML configuration file; flags override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: escape codes make a log file hard to read and to grep.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(error)
            if matches!(
                error.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // One line, like every other startup error; `--help` has the rest.
            let message = error.to_string();
            let first = message.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "streambus: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streambus: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: Flags) -> Result<(), String> {
    let mut config = match &flags.config {
        Some(path) => BrokerConfig::from_file(path).map_err(|error| error.to_string())?,
        None => BrokerConfig::default(),
    };
    if let Some(data_dir) = flags.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(listen) = flags.listen {
        config.listen = listen;
    }
    if let Some(shards) = flags.shards {
        if shards == 0 {
            return Err("--shards must be at least 1".into());
        }
        config.shards = shards;
    }
    if let Some(host) = flags.advertised_host {
        config.advertised_host = Some(host);
    }
    // Signals are blocked for the broker's threads from here on and read by this thread.
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|error| format!("cannot handle signals: {error}"))?;
    let broker = streambus::broker::start(config).map_err(|error| error.to_string())?;
    let shard_ports: Vec<String> = broker
        .shard_addresses
        .iter()
        .map(|address| address.port().to_string())
        .collect();
    // One line a script can parse; tests read the bootstrap address from it.
    println!(
        "streambus listening on {} shards {} shard ports {} data dir {}",
        broker.bootstrap,
        broker.shard_addresses.len(),
        shard_ports.join(","),
        broker.data_dir.display()
    );
    loop {
        if let Some(signal) = signals.pending().next() {
            eprintln!("streambus: signal {signal} received; stopping");
            break;
        }
        if broker.any_shard_finished() {
            eprintln!("streambus: a shard stopped on its own; stopping the others");
            break;
        }
        std::thread::sleep(Duration::from_millis(MAIN_POLL_INTERVAL_MS));
    }
    broker.stop();
    broker.join().map_err(|error| error.to_string())?;
    eprintln!("streambus: stopped cleanly");
    Ok(())
}
