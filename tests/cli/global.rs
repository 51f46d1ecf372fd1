//! What every command shares: an unreachable broker fails fast with one
//! line naming the cause, usage errors exit 2 before any network I/O, help
//! and version, shell completions, where the brokers come from, `-X`
//! properties, verbose logs on stderr only, and a closed stdout ends
//! quietly.

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::broker::{brokers, unique};
use support::child::{COMMAND_DEADLINE, wait_within};
use support::events::numbered;
use support::kafka::{create_topic, message_count, produce};
use support::kbridge::{assert_no_panic, kbridge, kbridge_without_brokers, run, run_cmd};
use support::output::OutputExt;
use support::tools::run_tool;

use crate::printed::topic_names;

/// Commands that need the cluster, each with the input it gets.
const NETWORK_COMMANDS: &[&[&str]] = &[
    &["topics", "list"],
    &["topics", "describe", "t"],
    &["topics", "create", "t"],
    &["topics", "delete", "t"],
    &["produce", "t"],
    &["consume", "t", "-e"],
    &["groups", "list"],
    &["groups", "describe", "g"],
    &[
        "groups",
        "reset-offsets",
        "g",
        "--topic",
        "t",
        "--to-earliest",
    ],
    &["groups", "delete", "g"],
    &["cluster", "describe"],
    &["cluster", "api-versions"],
];

/// Runs every network command against `-b 127.0.0.1:1 --timeout 2s`, in
/// parallel; returns (command, elapsed, output).
fn against_unreachable_broker() -> Vec<(String, Duration, std::process::Output)> {
    let handles: Vec<_> = NETWORK_COMMANDS
        .iter()
        .map(|args| {
            std::thread::spawn(move || {
                let mut cmd = kbridge_without_brokers();
                cmd.args(["-b", "127.0.0.1:1", "--timeout", "2s"])
                    .args(*args);
                let start = Instant::now();
                let out = run_cmd(cmd, b"{}\n");
                (args.join(" "), start.elapsed(), out)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

#[test]
fn unreachable_broker_fails_fast_with_one_line() {
    for (cmd, elapsed, out) in against_unreachable_broker() {
        assert_eq!(out.code(), 1, "{cmd}:\n{}", out.describe());
        assert!(elapsed < Duration::from_secs(10), "{cmd} took {elapsed:?}");
        let err = out.stderr_str();
        assert_eq!(
            err.lines().count(),
            1,
            "{cmd}: one line:\n{}",
            out.describe()
        );
        assert!(
            err.starts_with("kbridge: error: "),
            "{cmd}:\n{}",
            out.describe()
        );
        assert!(err.contains("127.0.0.1:1"), "{cmd}:\n{}", out.describe());
        assert!(out.stdout.is_empty(), "{cmd}:\n{}", out.describe());
    }
}

#[test]
fn unreachable_broker_error_names_the_cause() {
    for (cmd, _, out) in against_unreachable_broker() {
        assert!(
            out.stderr_str()
                .to_lowercase()
                .contains("connection refused"),
            "{cmd}:\n{}",
            out.describe()
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["topics"],
        &["topics", "create"],
        &["topics", "delete"],
        &["topics", "list", "--bogus"],
        &["--timeout", "soon", "topics", "list"],
        &["--timeout", "-3", "topics", "list"],
        &["-X", "novalue", "topics", "list"],
        &["produce"],
        &["consume"],
        &["consume", "t", "-c", "many"],
        &["groups", "describe"],
        &["groups", "delete"],
        &["cluster"],
        &["completions", "tcsh"],
    ];
    for args in cases {
        let mut cmd = kbridge_without_brokers();
        // Unreachable: usage errors must be found before any network I/O.
        cmd.args(["-b", "127.0.0.1:1"]).args(*args);
        let start = Instant::now();
        let out = run_cmd(cmd, b"");
        assert_eq!(out.code(), 2, "{args:?}:\n{}", out.describe());
        assert!(!out.stderr.is_empty(), "{args:?}:\n{}", out.describe());
        assert!(out.stdout.is_empty(), "{args:?}:\n{}", out.describe());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{args:?} waited for the network"
        );
    }
}

#[test]
fn help_and_version() {
    let mut cmd = kbridge_without_brokers();
    cmd.arg("--help");
    let out = run_cmd(cmd, b"");
    out.ok();
    for sub in [
        "topics",
        "produce",
        "consume",
        "groups",
        "cluster",
        "completions",
    ] {
        assert!(out.stdout_str().contains(sub), "{sub}:\n{}", out.describe());
    }
    let mut cmd = kbridge_without_brokers();
    cmd.args(["consume", "--help"]);
    let out = run_cmd(cmd, b"");
    out.ok();
    for opt in ["--group", "--offset", "--count", "--exit", "--format"] {
        assert!(out.stdout_str().contains(opt), "{opt}:\n{}", out.describe());
    }
    let mut cmd = kbridge_without_brokers();
    cmd.arg("-V");
    let out = run_cmd(cmd, b"");
    assert_eq!(
        out.ok().stdout_str().trim(),
        format!("kbridge {}", env!("CARGO_PKG_VERSION"))
    );
    // --version, as `kcat -V`: librdkafka's version and what it was built with.
    let mut cmd = kbridge_without_brokers();
    cmd.arg("--version");
    let out = run_cmd(cmd, b"");
    let text = out.ok().stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("kbridge {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(lines[1].starts_with("librdkafka 2."), "{text}");
    for fact in [
        "builtin.features=",
        "ssl",
        "sasl_scram",
        "zstd",
        "Kafka security: TLS",
        "SASL/PLAIN",
        "webhook: HTTP/1.1, TLS by OpenSSL",
    ] {
        assert!(text.contains(fact), "--version lacks {fact:?}:\n{text}");
    }
}

/// The environment's values are not part of the help (or of man pages
/// generated on a build machine): a broker list can carry credentials.
#[test]
fn help_and_manpages_name_the_environment_but_not_its_values() {
    let secret = "user:SECRET-IN-ENV@kafka:9094";
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check", "--help"],
        vec!["manpages", dir.path().to_str().unwrap()],
    ] {
        let mut cmd = kbridge_without_brokers();
        cmd.args(&args)
            .env("KBRIDGE_BROKERS", secret)
            .env("KBRIDGE_CONFIG", "/secret/path.toml");
        let out = run_cmd(cmd, b"");
        let text = out.ok().stdout_str();
        assert!(
            !text.contains("SECRET") && !text.contains("/secret/"),
            "{args:?}:\n{text}"
        );
    }
    let run_help = {
        let mut cmd = kbridge_without_brokers();
        cmd.args(["run", "--help"]);
        run_cmd(cmd, b"").ok().stdout_str()
    };
    assert!(run_help.contains("[env: KBRIDGE_BROKERS]"), "{run_help}");
    for page in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(page.unwrap().path()).unwrap();
        assert!(!text.contains("SECRET") && !text.contains("/secret/"));
    }
}

#[test]
fn manpages_are_written_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = kbridge_without_brokers();
    cmd.arg("manpages").arg(dir.path());
    let out = run_cmd(cmd, b"");
    let listed = out.ok().lines();
    for name in [
        "kbridge.1",
        "kbridge-run.1",
        "kbridge-groups-reset-offsets.1",
        "kbridge-dlq-stats.1",
        "kbridge-dlq-show.1",
        "kbridge-dlq-redrive.1",
        "kbridge-trace.1",
    ] {
        let path = dir.path().join(name);
        assert!(
            listed.contains(&path.display().to_string()),
            "{name} not in {listed:?}"
        );
    }
    for page in &listed {
        let check = run_tool("groff", &["-k", "-man", "-Tutf8", "-ww", "-z", page], b"");
        assert!(
            check.status.success() && check.stderr.is_empty(),
            "groff finds {page} wrong:\n{}",
            check.describe()
        );
    }
}

#[test]
fn completions_print_scripts() {
    let script = |shell: &str| {
        let mut cmd = kbridge_without_brokers();
        cmd.args(["completions", shell]);
        run_cmd(cmd, b"").ok().stdout_str()
    };
    let bash = script("bash");
    assert!(bash.contains("_kbridge()"), "{bash}");
    assert!(bash.contains("complete -F _kbridge"), "{bash}");
    for word in [
        "topics",
        "reset-offsets",
        "--key-field",
        "--to-datetime",
        "redrive",
        "--max-redrives",
        "trace",
        "--audit-topic",
    ] {
        assert!(bash.contains(word), "{word} missing from the bash script");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kbridge.bash");
    std::fs::write(&path, &bash).expect("write");
    let check = run_tool("bash", &["-n", path.to_str().unwrap()], b"");
    assert!(check.status.success(), "bash -n:\n{}", check.describe());

    assert!(script("zsh").starts_with("#compdef kbridge"));
    assert!(script("fish").contains("complete -c kbridge"));
}

#[test]
fn brokers_from_the_environment_or_anywhere_on_the_line() {
    let t = unique("kbt-env");
    create_topic(&t, 1);
    let listed = |out: std::process::Output| topic_names(&out.ok().json()).contains(&t);

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", brokers())
        .args(["topics", "list", "--json"]);
    assert!(listed(run_cmd(cmd, b"")), "KBRIDGE_BROKERS");

    let mut cmd = kbridge_without_brokers();
    cmd.args(["topics", "list", "--json", "--brokers", &brokers()]);
    assert!(listed(run_cmd(cmd, b"")), "--brokers after the subcommand");

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", "127.0.0.1:1")
        .args(["topics", "list", "--json", "-b", &brokers()]);
    assert!(listed(run_cmd(cmd, b"")), "-b wins over KBRIDGE_BROKERS");

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", "127.0.0.1:1")
        .args(["--timeout", "1s", "topics", "list"]);
    run_cmd(cmd, b"").exit(1).stderr_has("127.0.0.1:1");
}

#[test]
fn librdkafka_properties_with_x() {
    run(&["-X", "no.such.property=1", "topics", "list"], "")
        .exit(1)
        .stderr_has("check the -X properties");

    // A property takes effect: a 3 kB line is fine by default, too large
    // with message.max.bytes=1000.
    let t = unique("kbt-prop");
    create_topic(&t, 1);
    let big = format!("{{\"x\":\"{}\"}}\n", "y".repeat(3000));
    run(&["produce", &t, "-q"], &big).ok();
    assert_eq!(message_count(&t), 1);
    run(&["-X", "message.max.bytes=1000", "produce", &t], &big)
        .exit(1)
        .stderr_has("line 1")
        .stderr_has("too large");
    run(
        &["--property", "message.max.bytes=1000", "produce", &t],
        &big,
    )
    .exit(1);
    assert_eq!(message_count(&t), 1);
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    let t = unique("kbt-verbose");
    create_topic(&t, 1);
    let quiet = run(&["topics", "list", "--json"], "");
    assert!(quiet.ok().stderr.is_empty(), "{}", quiet.describe());
    for v in ["-v", "-vv", "-vvv", "--verbose"] {
        let out = run(&[v, "topics", "list", "--json"], "");
        assert!(topic_names(&out.ok().json()).contains(&t), "{v}");
    }
    let out = run(&["-vvv", "topics", "list", "--json"], "");
    assert!(
        !out.stderr.is_empty(),
        "-vvv logs something:\n{}",
        out.describe()
    );
}

#[test]
fn consume_into_a_closed_pipe_ends_quietly() {
    let t = unique("kbt-pipe");
    create_topic(&t, 1);
    produce(&t, &numbered(0..100), &[]);
    let mut cmd = kbridge();
    cmd.args(["consume", &t, "-e"]);
    let out = closed_stdout(cmd);
    assert_no_panic(&out);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(out.stderr.is_empty(), "{}", out.describe());
}

#[test]
fn other_output_into_a_closed_pipe_ends_quietly() {
    let t = unique("kbt-pipe2");
    let g = unique("kbt-group");
    create_topic(&t, 1);
    produce(&t, &numbered(0..1), &[]);
    run(&["consume", &t, "-g", &g, "-e"], "").ok();
    let cases: Vec<Vec<&str>> = vec![
        vec!["topics", "list"],
        vec!["topics", "list", "--json"],
        vec!["topics", "describe", &t],
        vec!["groups", "list"],
        vec!["groups", "describe", &g],
        vec!["cluster", "describe"],
        vec!["cluster", "api-versions"],
        vec!["completions", "bash"],
    ];
    let mut failures = Vec::new();
    for args in &cases {
        let mut cmd = kbridge();
        cmd.args(args);
        let out = closed_stdout(cmd);
        if out.code() != 0 || !out.stderr.is_empty() {
            failures.push(format!("{args:?}: {}", out.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `cmd` with its stdout a pipe whose reading end is already closed
/// (`kbridge … | head -0`).
fn closed_stdout(mut cmd: std::process::Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kbridge");
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let status = wait_within(&mut child, COMMAND_DEADLINE).expect("kbridge hangs on a closed pipe");
    let mut err = Vec::new();
    std::io::Read::read_to_end(&mut stderr, &mut err).expect("read stderr");
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}
