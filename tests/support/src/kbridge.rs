//! The kbridge binary under test and the commands that run it: always with
//! a clean environment (no `KBRIDGE_*` or `RUST_LOG` of the caller's), under
//! the deadline, and checked for panic traces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::broker::brokers;
use crate::child::{COMMAND_DEADLINE, output_within};
use crate::output::OutputExt;

/// The kbridge binary under test: a copy, taken when a test first needs it,
/// of the `kbridge` that cargo built for this test binary.
///
/// Cargo builds a package's binaries before its integration tests, into the
/// profile directory whose `deps/` holds the test executable: a test run as
/// `<target>/debug/deps/cli-<hash>` finds `<target>/debug/kbridge` (what
/// `CARGO_BIN_EXE_kbridge` names; cargo sets that only when it compiles an
/// integration test, not this library).
///
/// That path is shared by every worktree that builds into the same
/// `CARGO_TARGET_DIR`, and each `cargo build` or `cargo test` there
/// re-links it to its own build; a copy taken right after cargo built this
/// test keeps another worktree's build from replacing the binary in the
/// middle of the run. The copy is `<target>/tmp/kbridge-for-<test>` (the
/// directory `CARGO_TARGET_TMPDIR` names), one per test binary.
pub fn kbridge_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let test = std::env::current_exe().expect("test executable");
        let deps = test.parent().filter(|d| d.ends_with("deps"));
        let Some(profile) = deps.and_then(Path::parent) else {
            panic!(
                "{} is not in a cargo `deps` directory: run the tests with cargo",
                test.display()
            );
        };
        let built = profile.join(format!("kbridge{}", std::env::consts::EXE_SUFFIX));
        let dir = profile.parent().unwrap_or(profile).join("tmp");
        let name = test.file_name().expect("file name").to_string_lossy();
        let copy = dir.join(format!("kbridge-for-{name}"));
        let tmp = dir.join(format!("kbridge-for-{name}.{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(&built, &tmp))
            .and_then(|_| std::fs::rename(&tmp, &copy))
            .unwrap_or_else(|e| {
                panic!("cannot copy {} to {}: {e}", built.display(), copy.display())
            });
        copy
    })
}

/// `kbridge -b <test brokers>`, with no broker or log settings inherited
/// from the environment.
pub fn kbridge() -> Command {
    kbridge_at(&brokers())
}

/// `kbridge -b BROKERS` (for brokers other than the shared one).
pub fn kbridge_at(brokers: &str) -> Command {
    kbridge_via(&[], brokers)
}

/// `kbridge -b BROKERS` run through a wrapper command (e.g. `taskset -c
/// 0`), or directly when `wrapper` is empty.
pub fn kbridge_via(wrapper: &[String], brokers: &str) -> Command {
    let mut cmd = clean(wrapper);
    cmd.arg("-b").arg(brokers);
    cmd
}

/// `kbridge` with nothing preset (for tests of `-b`, `KBRIDGE_BROKERS` and
/// usage errors).
pub fn kbridge_without_brokers() -> Command {
    clean(&[])
}

/// kbridge (through `wrapper`, if any) with no `KBRIDGE_*` variable (the
/// relay reads its configuration from them), nor `RUST_LOG` or a proxy
/// variable of the caller's.
fn clean(wrapper: &[String]) -> Command {
    let mut cmd = match wrapper.split_first() {
        None => Command::new(kbridge_bin()),
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(kbridge_bin());
            c
        }
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    // The machine's proxy is not the tests': the webhook tests talk to
    // 127.0.0.1 (the proxy tests set their own).
    for name in [
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// Runs `kbridge -b <brokers> ARGS` with `stdin` as its input.
pub fn run(args: &[&str], stdin: &str) -> Output {
    run_bytes(args, stdin.as_bytes())
}

/// Like `run`, for input that is not UTF-8.
pub fn run_bytes(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = kbridge();
    cmd.args(args);
    run_cmd(cmd, stdin)
}

/// Runs any kbridge command (see `kbridge`, `kbridge_without_brokers`)
/// under the deadline, and checks that it did not panic.
pub fn run_cmd(cmd: Command, stdin: &[u8]) -> Output {
    let out = output_within(cmd, stdin, COMMAND_DEADLINE);
    assert_no_panic(&out);
    out
}

/// No kbridge output may ever show a panic: kbridge promises one-line errors.
pub fn assert_no_panic(out: &Output) {
    for (name, text) in [("stdout", out.stdout_str()), ("stderr", out.stderr_str())] {
        for bad in ["panicked", "RUST_BACKTRACE", "internal error"] {
            assert!(
                !text.contains(bad),
                "kbridge {name} contains {bad:?}:\n{}",
                out.describe()
            );
        }
    }
}
