//! A throwaway PostgreSQL cluster for one test: `initdb` and `pg_ctl` from
//! Debian's `postgresql` package in a temporary directory, reached over a
//! Unix socket in that directory (no TCP port to pick or collide on).
//! Under root (as CI runs) the cluster runs as the `postgres` user, since
//! PostgreSQL refuses to run as root. Dropping it stops the server at once
//! and removes the directory.
//!
//! Shared by the test crates with `#[path]`.

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Postgres {
    /// Creates and starts a cluster; panics with the reason if it cannot
    /// (`scripts/setup --test` installs the server).
    pub fn start() -> Self {
        let bin = server_bin();
        let dir = tempfile::Builder::new()
            .prefix("streamforge-pg")
            .tempdir()
            .expect("a temporary directory");
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(Command::new(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .as_postgres());
        let options = format!(
            "-k {} -c listen_addresses='' -F -c max_connections=50",
            dir.path().display()
        );
        run(Command::new(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .as_postgres());
        Self { dir, bin }
    }

    /// Creates database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        run(Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .arg("postgres"));
        self.url(name)
    }

    /// The URL of database `name` (over the cluster's socket).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}",
            self.dir.path().display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .as_postgres()
            .output();
    }
}

/// The newest installed server's `bin` directory.
fn server_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/setup --test)")
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL's initdb under /usr/lib/postgresql/*/bin")
        .1
}

/// Whether this process runs as root (`/proc/self` belongs to the
/// process's effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

trait AsPostgres {
    /// Runs the command as the `postgres` user when we are root.
    fn as_postgres(&mut self) -> &mut Command;
}

impl AsPostgres for Command {
    fn as_postgres(&mut self) -> &mut Command {
        if !is_root() {
            return self;
        }
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(self.get_program());
        wrapped.args(self.get_args());
        *self = wrapped;
        self
    }
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
