//! Every command over the test broker's secured listeners: SASL_SSL with
//! SCRAM-SHA-512 and with PLAIN, and SSL with a client certificate (mutual
//! TLS) — and the failures a new user meets there, each one clear line
//! naming the cause, within `--timeout`.

use std::process::Command;
use std::time::{Duration, Instant};

use support::broker::{
    PLAIN_PASSWORD, PLAIN_USER, SCRAM_PASSWORD, SCRAM_USER, Secured, secured, unique,
};
use support::kbridge::{kbridge_at, run_cmd};
use support::output::OutputExt;

/// `kbridge -b ADDR -X … ARGS`.
fn kb(addr: &str, props: &[String], args: &[&str]) -> Command {
    let mut c = kbridge_at(addr);
    for p in props {
        c.arg("-X").arg(p);
    }
    c.args(args);
    c
}

fn ok(addr: &str, props: &[String], args: &[&str], stdin: &str) -> std::process::Output {
    let out = run_cmd(kb(addr, props, args), stdin.as_bytes());
    out.ok();
    out
}

/// Topics, produce, consume with a group, groups describe and
/// reset-offsets, cluster describe: all over one secured connection.
fn every_command(addr: &str, props: &[String]) {
    let t = unique("kbt-secured");
    let g = unique("kbt-secured-g");
    ok(
        addr,
        props,
        &["topics", "create", &t, "-p", "2", "-r", "1"],
        "",
    );
    let listed = ok(addr, props, &["topics", "list"], "").stdout_str();
    assert!(listed.contains(&t), "{listed}");
    let d = ok(addr, props, &["topics", "describe", &t, "--json"], "").json();
    assert_eq!(d.to_string().matches("\"partition\"").count(), 2, "{d}");
    let lines: String = (0..3).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    ok(addr, props, &["produce", &t], &lines);
    let consumed = ok(
        addr,
        props,
        &[
            "consume", &t, "-g", &g, "-o", "earliest", "-e", "-f", "json",
        ],
        "",
    )
    .json_lines();
    assert_eq!(consumed.len(), 3, "{consumed:?}");
    let group = ok(addr, props, &["groups", "describe", &g, "--json"], "").json();
    assert_eq!(group["total_lag"], 0, "{group}");
    ok(
        addr,
        props,
        &[
            "groups",
            "reset-offsets",
            &g,
            "--topic",
            &t,
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    let group = ok(addr, props, &["groups", "describe", &g, "--json"], "").json();
    assert_eq!(group["total_lag"], 3, "{group}");
    let cluster = ok(addr, props, &["cluster", "describe", "--json"], "").json();
    assert!(
        cluster["brokers"].as_array().is_some_and(|b| !b.is_empty()),
        "{cluster}"
    );
    ok(addr, props, &["topics", "delete", &t], "");
}

#[test]
fn every_command_over_sasl_ssl_with_scram() {
    let s = secured();
    every_command(
        &s.sasl_ssl,
        &s.sasl("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD),
    );
}

#[test]
fn every_command_over_sasl_ssl_with_plain() {
    let s = secured();
    every_command(&s.sasl_ssl, &s.sasl("PLAIN", PLAIN_USER, PLAIN_PASSWORD));
}

#[test]
fn every_command_over_mutual_tls() {
    let s = secured();
    every_command(&s.ssl, &s.mtls());
}

/// Runs `cluster describe` with these settings and a 5 s timeout; returns
/// stderr after checking that it failed with status 1 within the timeout
/// and with one line of error.
fn refused(addr: &str, props: &[String]) -> String {
    let started = Instant::now();
    let out = run_cmd(
        kb(addr, props, &["--timeout", "5s", "cluster", "describe"]),
        b"",
    );
    let took = started.elapsed();
    out.exit(1);
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: {}",
        out.describe()
    );
    let err = out.stderr_str();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

fn with(mut props: Vec<String>, key: &str, value: Option<&str>) -> Vec<String> {
    props.retain(|p| !p.starts_with(&format!("{key}=")));
    if let Some(v) = value {
        props.push(format!("{key}={v}"));
    }
    props
}

#[test]
fn a_wrong_password_names_the_mechanism_and_the_user_not_the_password() {
    let s = secured();
    let err = refused(
        &s.sasl_ssl,
        &s.sasl("SCRAM-SHA-512", SCRAM_USER, "not-the-password"),
    );
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        err.contains("SCRAM-SHA-512") && err.contains(SCRAM_USER),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
}

#[test]
fn an_unknown_ca_is_a_certificate_error() {
    let s = secured();
    let props = with(
        s.sasl("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD),
        "ssl.ca.location",
        None,
    );
    let err = refused(&s.sasl_ssl, &props);
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(err.contains("ssl.ca.location"), "says what to set: {err}");
}

#[test]
fn a_hostname_mismatch_is_named() {
    let s = secured();
    let addr = s.sasl_ssl.replace("127.0.0.1", "localhost");
    let err = refused(&addr, &s.sasl("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD));
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(err.contains("localhost"), "{err}");
}

#[test]
fn a_missing_or_untrusted_client_certificate_is_refused() {
    let s = secured();
    let none = with(
        with(s.mtls(), "ssl.certificate.location", None),
        "ssl.key.location",
        None,
    );
    let err = refused(&s.ssl, &none);
    assert!(err.contains("client certificate"), "{err}");
    let rogue = with(
        with(
            s.mtls(),
            "ssl.certificate.location",
            Some(&s.cert("rogue-client.pem")),
        ),
        "ssl.key.location",
        Some(&s.cert("rogue-client.key")),
    );
    let err = refused(&s.ssl, &rogue);
    assert!(err.contains("client certificate"), "{err}");
}

#[test]
fn a_tls_listener_addressed_as_plaintext_says_so() {
    let s: &Secured = secured();
    let err = refused(&s.sasl_ssl, &[]);
    assert!(err.contains("security.protocol"), "{err}");
}

/// At full verbosity (`-vvv`, librdkafka's `debug=all`), through a success
/// and a refused password, no password appears in any output.
#[test]
fn no_password_appears_at_full_verbosity() {
    let s = secured();
    let mut props = s.sasl("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD);
    props.push("debug=all".into());
    let mut cmd = kb(&s.sasl_ssl, &props, &["topics", "list"]);
    cmd.arg("-vvv");
    let good = run_cmd(cmd, b"");
    good.ok();
    let wrong = "wrong-pw-4f4f4f4f";
    let mut props = s.sasl("SCRAM-SHA-512", SCRAM_USER, wrong);
    props.push("debug=all".into());
    let mut cmd = kb(&s.sasl_ssl, &props, &["--timeout", "5s", "topics", "list"]);
    cmd.arg("-vvv");
    let bad = run_cmd(cmd, b"");
    bad.exit(1);
    for (out, secret) in [(&good, SCRAM_PASSWORD), (&bad, wrong)] {
        let all = format!("{}{}", out.stdout_str(), out.stderr_str());
        assert!(all.contains("TRACE"), "verbose output expected: {all}");
        assert!(!all.contains(secret), "{secret} appears");
    }
}

/// A client key encrypted with a password (`ssl.key.password`): the
/// commands work with the right password and say what is wrong with a wrong
/// one, and neither password appears at full verbosity.
#[test]
fn an_encrypted_client_key_works_and_its_password_never_shows() {
    let s = secured();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("client-encrypted.key");
    let password = "key-pw-6d6d6d6d";
    let made = support::tools::run_tool(
        "openssl",
        &[
            "pkey",
            "-in",
            &s.cert("client.key"),
            "-aes256",
            "-passout",
            &format!("pass:{password}"),
            "-out",
            key.to_str().unwrap(),
        ],
        b"",
    );
    assert!(made.status.success(), "{}", made.describe());
    let props = |pw: &str| {
        let mut p = with(s.mtls(), "ssl.key.location", Some(key.to_str().unwrap()));
        p.push(format!("ssl.key.password={pw}"));
        p.push("debug=all".into());
        p
    };
    let mut cmd = kb(&s.ssl, &props(password), &["topics", "list"]);
    cmd.arg("-vvv");
    let good = run_cmd(cmd, b"");
    good.ok();
    let wrong = "wrong-key-pw-2b2b2b2b";
    let mut cmd = kb(
        &s.ssl,
        &props(wrong),
        &["--timeout", "5s", "topics", "list"],
    );
    cmd.arg("-vvv");
    let bad = run_cmd(cmd, b"");
    bad.exit(1)
        .stderr_has("ssl.key.password is wrong or missing");
    for (out, secret) in [(&good, password), (&bad, wrong)] {
        let all = format!("{}{}", out.stdout_str(), out.stderr_str());
        assert!(!all.contains(secret), "{secret} appears:\n{all}");
    }
}
