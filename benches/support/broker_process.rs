//! The real broker as a child process for the broker benches: started on ephemeral ports in
//! a temporary data directory, its CPU time read from `/proc`, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running broker.
pub struct BrokerProcess {
    child: Child,
    /// The bootstrap address.
    pub bootstrap: String,
    _directory: tempfile::TempDir,
}

/// A setting from the environment, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

impl BrokerProcess {
    /// Starts `BROKER_BENCH_BINARY` (default: this build's) with `shards` shards, under
    /// `BROKER_BENCH_DIR` (default: the target directory).
    // Each bench includes this file on its own; not every bench starts a broker this way.
    #[allow(dead_code)]
    pub fn start(shards: usize) -> Self {
        Self::start_with_config(shards, "")
    }

    /// Starts it as [`BrokerProcess::start`] does, with `config` as its TOML configuration.
    pub fn start_with_config(shards: usize, config: &str) -> Self {
        let parent = std::env::var_os("BROKER_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
        std::fs::create_dir_all(&parent).expect("bench directory");
        let directory = tempfile::tempdir_in(parent).expect("temporary directory");
        let binary = std::env::var_os("BROKER_BENCH_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_streambus")));
        let config_path = directory.path().join("broker.toml");
        std::fs::write(&config_path, config).expect("write the broker config");
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(directory.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--shards", &shards.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start streambus");
        let line = BufReader::new(child.stdout.take().expect("stdout"))
            .lines()
            .next()
            .expect("listening line")
            .expect("read");
        let bootstrap = line.split_whitespace().nth(3).expect("address").to_string();
        Self {
            child,
            bootstrap,
            _directory: directory,
        }
    }

    /// User plus system CPU seconds of the broker so far, from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks / ticks_per_second)
    }

    /// SIGTERM, and the broker must exit 0.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait for broker");
        assert!(status.success(), "broker exited with {status}");
    }
}
