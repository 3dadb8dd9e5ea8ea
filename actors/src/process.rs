//! Child processes (ffmpeg, ffprobe) that can never outlive their owner.
//!
//! Every child starts in a process group of its own and is tracked in a
//! [`Processes`] registry. Dropping a [`ChildProcess`] kills the whole group
//! (ffmpeg's own helpers included) and tokio reaps it; [`Processes::kill_all`]
//! does the same for every child at shutdown. No path leaves an orphan or a
//! zombie behind.

use std::collections::HashMap;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// The children alive right now, by process id, with the name they were spawned under.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    live: Arc<Mutex<HashMap<u32, String>>>,
}

impl Processes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `command` in a new process group, tracked under `name` until it
    /// is reaped or dropped. Standard input is closed unless the caller set it.
    ///
    /// The child also gets SIGKILL if this server dies without cleaning up
    /// (`kill -9`, a crash): Linux's parent-death signal, so no ffmpeg
    /// outlives the process that started it.
    pub fn spawn(&self, name: &str, mut command: Command) -> io::Result<ChildProcess> {
        command.process_group(0).kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one async-signal-safe system call (prctl).
        #[cfg(target_os = "linux")]
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
            });
        }
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other(format!("{name}: spawned child has no pid")))?;
        self.lock().insert(pid, name.to_owned());
        tracing::debug!(pid, name, "child process started");
        Ok(ChildProcess {
            child,
            pid,
            name: name.to_owned(),
            registry: self.clone(),
            reaped: false,
        })
    }

    /// How many children are alive.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live children's process ids and names.
    pub fn snapshot(&self) -> Vec<(u32, String)> {
        self.lock()
            .iter()
            .map(|(pid, name)| (*pid, name.clone()))
            .collect()
    }

    /// Sends SIGKILL to every tracked child's process group and returns how
    /// many there were. Their owners see them exit and reap them.
    pub fn kill_all(&self) -> usize {
        let live = self.snapshot();
        for (pid, name) in &live {
            tracing::info!(pid, name, "killing child process at shutdown");
            kill_group(*pid);
        }
        live.len()
    }

    /// Kills every child and waits, up to `timeout`, until all are reaped.
    /// Returns how many were still unreaped at the deadline.
    pub async fn kill_all_and_wait(&self, timeout: Duration) -> usize {
        self.kill_all();
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        // The map stays consistent even if a holder panicked: every critical
        // section is a single insert, remove or copy.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, pid: u32) {
        self.lock().remove(&pid);
    }
}

fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    // ESRCH (already gone) is the expected race with a child exiting by itself.
    if let Err(err) = killpg(Pid::from_raw(raw), Signal::SIGKILL)
        && err != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, %err, "cannot kill child process group");
    }
}

/// A running child. Kill-and-reap on drop.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    pid: u32,
    name: String,
    registry: Processes,
    reaped: bool,
}

impl ChildProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the child to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.mark_reaped();
        Ok(status)
    }

    /// Reads the child's whole standard output and error (for short-lived
    /// children with small output: ffprobe, a single image) and reaps it.
    pub async fn output(mut self) -> io::Result<std::process::Output> {
        use tokio::io::AsyncReadExt;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let out = self.take_stdout();
        let err = self.take_stderr();
        let read_out = async {
            match out {
                Some(mut pipe) => pipe.read_to_end(&mut stdout).await.map(|_| ()),
                None => Ok(()),
            }
        };
        let read_err = async {
            match err {
                Some(mut pipe) => pipe.read_to_end(&mut stderr).await.map(|_| ()),
                None => Ok(()),
            }
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a.and(b)?;
        let status = self.wait().await?;
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Kills the child's process group and reaps the child.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        if !self.reaped {
            kill_group(self.pid);
        }
        self.wait().await
    }

    fn mark_reaped(&mut self) {
        if !self.reaped {
            self.reaped = true;
            // The group may hold grandchildren the child left behind.
            kill_group(self.pid);
            self.registry.forget(self.pid);
            tracing::debug!(pid = self.pid, name = %self.name, "child process reaped");
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.pid);
            // kill_on_drop(true) has tokio kill and reap the child in the background.
            self.registry.forget(self.pid);
        }
    }
}

/// Reads a child's stderr to its end in a task, keeping the last `lines`
/// lines joined with ` | `: the reason to give when the child fails.
pub fn stderr_tail(stderr: Option<ChildStderr>, lines: usize) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut kept = std::collections::VecDeque::with_capacity(lines);
        if let Some(stderr) = stderr {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if kept.len() == lines {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
        Vec::from(kept).join(" | ")
    })
}

/// Has `command`'s child keep `fds` open under their own numbers (they are
/// close-on-exec here, so no other child gets them): a program told to
/// write to `pipe:N` (ffmpeg) writes into our end of that pipe. The caller
/// drops its copies once the child is spawned, so that the child's exit is
/// the reader's end of file.
pub fn inherit_fds(command: &mut Command, fds: &[std::os::fd::OwnedFd]) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: runs in the forked child before exec and makes only fcntl
    // calls (async-signal-safe) on descriptors the parent keeps open until
    // `spawn` returns.
    unsafe {
        command.pre_exec(move || {
            for fd in &raw {
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(*fd), rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
}

/// A command with every standard stream piped, the usual shape for ffmpeg children.
pub fn piped(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    fn alive(pid: u32) -> bool {
        // A zombie still has a /proc entry; its state letter is Z.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    async fn wait_gone(pid: u32) -> bool {
        for _ in 0..200 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A shell that starts a grandchild, prints its pid, then waits on it.
    fn shell_with_grandchild(processes: &Processes) -> ChildProcess {
        let mut command = piped("sh");
        command.args(["-c", "sleep 1000 & echo $!; wait"]);
        processes.spawn("shell", command).unwrap()
    }

    async fn grandchild_pid(child: &mut ChildProcess) -> u32 {
        let stdout = child.take_stdout().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        line.trim().parse().unwrap()
    }

    #[tokio::test]
    async fn drop_kills_the_whole_group() {
        let processes = Processes::new();
        let mut child = shell_with_grandchild(&processes);
        let (pid, grandchild) = (child.pid(), grandchild_pid(&mut child).await);
        assert_eq!(processes.len(), 1);
        drop(child);
        assert!(processes.is_empty());
        assert!(wait_gone(pid).await, "child {pid} survived its drop");
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn kill_all_reaches_every_child() {
        let processes = Processes::new();
        let mut children: Vec<ChildProcess> =
            (0..3).map(|_| shell_with_grandchild(&processes)).collect();
        let mut grandchildren = Vec::new();
        for child in &mut children {
            grandchildren.push(grandchild_pid(child).await);
        }
        assert_eq!(processes.kill_all(), 3);
        for child in &mut children {
            let status = child.wait().await.unwrap();
            assert!(!status.success());
            assert!(!alive(child.pid()));
        }
        assert!(processes.is_empty());
        for pid in grandchildren {
            assert!(wait_gone(pid).await, "grandchild {pid} survived kill_all");
        }
    }

    #[tokio::test]
    async fn a_child_that_exits_by_itself_is_reaped_and_forgotten() {
        let processes = Processes::new();
        let mut command = piped("true");
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = processes.spawn("true", command).unwrap();
        assert!(child.wait().await.unwrap().success());
        assert!(processes.is_empty());
    }
}
