//! The server under test: one this tool starts itself (`--spawn-server`, measured from `/proc`)
//! or one already running (`--server URL`, measured from its `/metrics` only). A started server
//! is always stopped: when the handle is dropped, and by the kernel if this tool dies first.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a started server may take to print `TANDEM_READY`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A server to load.
pub struct ServerUnderTest {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub http: String,
    /// The process to sample from `/proc`, when it runs on this host and we started it.
    pub pid: Option<u32>,
    child: Option<Child>,
    data_dir: Option<PathBuf>,
}

impl ServerUnderTest {
    /// A server that is already running at `http` (must be a loopback address).
    pub fn external(http: &str) -> anyhow::Result<Self> {
        ensure_loopback(http)?;
        Ok(Self {
            http: http.trim_end_matches('/').to_owned(),
            pid: None,
            child: None,
            data_dir: None,
        })
    }

    /// Starts `binary` on ephemeral loopback ports with a fresh data folder and waits for its
    /// `TANDEM_READY` line. Its log goes to `server.log` in that folder (kept if start fails).
    pub async fn spawn(binary: &Path) -> anyhow::Result<Self> {
        let data_dir = std::env::temp_dir().join(format!(
            "tandem-loadtest-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log = std::fs::File::create(data_dir.join("server.log"))?;
        let mut command = Command::new(binary);
        command
            .args(["--listen", "127.0.0.1:0", "--media-listen", "127.0.0.1:0"])
            // A load test starts many classes from one address at once.
            .args(["--create-per-minute", "0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        // SAFETY: `prctl` is async-signal-safe and touches nothing of the parent: the child
        // gets SIGKILL if this tool dies without dropping the handle (a panic, SIGKILL).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut server = Self {
            http: String::new(),
            pid,
            child: Some(child),
            data_dir: Some(data_dir.clone()),
        };
        let mut lines = BufReader::new(stdout).lines();
        let http = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(http) = parse_ready(&line) {
                    return Ok(http);
                }
            }
            bail!("the server exited before it was ready")
        })
        .await
        .map_err(|_| anyhow!("the server did not print TANDEM_READY in {READY_TIMEOUT:?}"))
        .and_then(|r| r)
        .with_context(|| format!("see {}", data_dir.join("server.log").display()))?;
        // Keep reading its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        server.http = http;
        Ok(server)
    }

    /// Stops a started server and removes its data folder; nothing for an external one.
    pub async fn stop(mut self) {
        self.stop_now();
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The `http=` URL of a `TANDEM_READY http=… media=…` line.
pub fn parse_ready(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("TANDEM_READY")?;
    rest.split_whitespace()
        .find_map(|f| f.strip_prefix("http="))
        .map(str::to_owned)
}

/// The `tandem` binary to start: `explicit` if given, else the one beside this tool, else
/// `target/release/tandem`, else `target/debug/tandem`.
pub fn default_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("tandem")));
    beside
        .into_iter()
        .chain([
            PathBuf::from("target/release/tandem"),
            PathBuf::from("target/debug/tandem"),
        ])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no tandem binary beside this tool or in target/{{release,debug}}: \
                 build it (cargo build --release --bin tandem) or pass --spawn-server PATH"
            )
        })
}

/// Refuses a server that is not on this host: the load is for loopback only.
pub fn ensure_loopback(http: &str) -> anyhow::Result<()> {
    let rest = http
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--server must be an http:// URL, got {http}"))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:80")
    };
    let addrs: Vec<IpAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {host_port}"))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() || !addrs.iter().all(IpAddr::is_loopback) {
        bail!(
            "--server {http} is not a loopback address; this tool only loads a server on this host"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready("TANDEM_READY http=http://127.0.0.1:4000 media=127.0.0.1:4001").as_deref(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(parse_ready("listening"), None);
    }

    #[test]
    fn only_loopback_servers() {
        assert!(ensure_loopback("http://127.0.0.1:8080").is_ok());
        assert!(ensure_loopback("http://localhost:8080/").is_ok());
        assert!(ensure_loopback("http://10.1.2.3:8080").is_err());
        assert!(ensure_loopback("https://127.0.0.1").is_err());
    }
}
