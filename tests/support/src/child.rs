//! Child processes under a deadline: a command that hangs fails its test
//! with the output it wrote so far instead of hanging the whole run, and a
//! process left running in the background is killed with its test.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::kbridge::{assert_no_panic, kbridge};
use crate::output::OutputExt;
use crate::tools::run_tool;
use crate::wait::wait_until;

/// How long any single command may run before its test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(90);

/// Spawns `cmd`, feeds it `stdin`, collects its output, and kills it when
/// it outlives `deadline`.
pub fn output_within(mut cmd: Command, stdin: &[u8], deadline: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e} (is it installed?)"));
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        // The command may exit without reading its input; that is its business.
        let _ = pipe.write_all(&input);
    });
    let stdout = reader(child.stdout.take().expect("piped stdout"));
    let stderr = reader(child.stderr.take().expect("piped stderr"));
    let status = wait_within(&mut child, deadline);
    let _ = writer.join();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{shown} did not finish within {deadline:?}; it was killed.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` to exit; kills it (and returns `None`) after `deadline`.
pub fn wait_within(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let mut status = None;
    let exited = wait_until(deadline, || {
        status = child.try_wait().expect("cannot wait for a child process");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Sends a signal by name (`INT`, what Ctrl-C sends; `TERM`; `KILL`) to a
/// process.
pub fn signal(pid: u32, sig: &str) {
    let out = run_tool("kill", &[&format!("-{sig}"), &pid.to_string()], b"");
    assert!(
        out.status.success(),
        "kill -{sig} {pid} failed:\n{}",
        out.describe()
    );
}

/// `kbridge ARGS` running in the background (a consumer without `-e`),
/// with its output collected. Dropping it kills the process, so a failing
/// test leaves no consumer behind.
pub struct Background {
    child: Child,
    shown: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Background {
    /// Starts `kbridge -b <brokers> ARGS` with no input.
    pub fn spawn(args: &[&str]) -> Self {
        let mut cmd = kbridge();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let stdout = Some(reader(child.stdout.take().expect("piped stdout")));
        let stderr = Some(reader(child.stderr.take().expect("piped stderr")));
        Background {
            child,
            shown,
            stdout,
            stderr,
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("cannot wait for a child process")
            .is_none()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    pub fn interrupt(mut self) -> Output {
        signal(self.child.id(), "INT");
        let status = wait_within(&mut self.child, COMMAND_DEADLINE);
        let stdout = self.stdout.take().expect("stdout").join().expect("reader");
        let stderr = self.stderr.take().expect("stderr").join().expect("reader");
        let Some(status) = status else {
            panic!(
                "{} did not exit within {COMMAND_DEADLINE:?} of SIGINT; killed.\nstdout:\n{}\nstderr:\n{}",
                self.shown,
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        };
        let out = Output {
            status,
            stdout,
            stderr,
        };
        assert_no_panic(&out);
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
