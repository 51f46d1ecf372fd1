//! The Debian package, installed on this machine as an operator would:
//! built by `scripts/package.sh`, installed with `dpkg -i`, checked against
//! the file list README gives ("Where the package puts things"), and removed
//! with `dpkg -r`, which must leave the configuration behind.
//!
//! Installs and removes a system package, so it runs as root (or through
//! `sudo -n`), as CI does. It refuses to touch a kbridge that was installed
//! before it started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::child::output_within;
use support::output::OutputExt;

const DEB_CONFIG: &str = "/etc/kbridge/kbridge.toml";
const UNIT: &str = "/usr/lib/systemd/system/kbridge.service";

/// The release-lto build (what ships) takes minutes on a fresh machine.
const BUILD_DEADLINE: Duration = Duration::from_secs(30 * 60);
const DEADLINE: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    out.stdout_str().trim() == "0"
}

/// A command as root: directly when the test runs as root, else `sudo -n`.
fn root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

/// Runs a command under the deadline. Takes `&mut` so that a builder chain
/// (`root("dpkg").args([…])`) can be passed as it is; the command is moved
/// out of it.
fn run(cmd: &mut Command) -> Output {
    let cmd = std::mem::replace(cmd, Command::new("true"));
    output_within(cmd, b"", DEADLINE)
}

fn ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        out.stdout_str(),
        out.stderr_str()
    );
    out
}

/// dpkg's status of the kbridge package ("" when dpkg has never heard of it).
fn package_status() -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "kbridge"]));
    out.stdout_str().trim().to_string()
}

/// Purges the package when the test ends, passed or failed, so a failed
/// run leaves the machine as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if !package_status().is_empty() {
            let _ = run(root("dpkg").args(["--purge", "kbridge"]));
        }
    }
}

/// The paths in README's table of where the package puts things: the
/// absolute paths in backquotes in the first cell of each row.
fn readme_paths() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("### Where the package puts things")
        .expect("README has a section 'Where the package puts things'");
    let paths: Vec<String> = readme[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|s| s.starts_with('/'))
        .map(str::to_string)
        .collect();
    assert!(
        paths.len() >= 8,
        "README's table lists too few paths: {paths:?}"
    );
    paths
}

fn stat(path: &str) -> String {
    ok(Command::new("stat").args(["-c", "%a %U %G", path]))
        .stdout_str()
        .trim()
        .to_string()
}

#[test]
fn the_debian_package_installs_a_working_service_and_removes_cleanly() {
    assert!(
        is_root()
            || run(Command::new("sudo").args(["-n", "true"]))
                .status
                .success(),
        "this test installs a package: run it as root or with password-less sudo"
    );
    assert_eq!(
        package_status(),
        "",
        "a kbridge package is already installed here; the test installs and purges its own \
         (remove it first: dpkg --purge kbridge)"
    );

    // Build it as the README says.
    let built = output_within(
        {
            let mut cmd = Command::new(repo().join("scripts/package.sh"));
            cmd.current_dir(repo());
            cmd
        },
        b"",
        BUILD_DEADLINE,
    );
    assert!(
        built.status.success(),
        "scripts/package.sh failed:\n{}",
        built.stderr_str()
    );
    let deb = built.stdout_str().lines().last().unwrap_or("").to_string();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).is_file(),
        "package.sh printed no package path: {deb:?}"
    );

    let _cleanup = Installed;
    ok(root("dpkg").args(["--install", &deb]));
    assert_eq!(package_status(), "install ok installed");

    // Every file README promises, where it promises it.
    for path in readme_paths() {
        assert!(
            Path::new(&path).exists(),
            "README says the package installs {path}, but it is not there \
             (a dpkg path-exclude in /etc/dpkg/dpkg.cfg.d would drop man pages)"
        );
    }
    let pages = std::fs::read_dir("/usr/share/man/man1")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("kbridge"))
        .count();
    assert!(pages >= 20, "one page per subcommand, got {pages}");

    // The service's user, and a config it can read and nobody else can.
    let user = ok(Command::new("getent").args(["passwd", "kbridge"])).stdout_str();
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid < 1000, "kbridge is a system user: {user}");
    assert_eq!(stat(DEB_CONFIG), "640 root kbridge");
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "kbridge"]));
    assert!(
        conffiles.stdout_str().contains(DEB_CONFIG),
        "the config is a conffile: {}",
        conffiles.stdout_str()
    );
    let check = ok(root("runuser").args([
        "-u",
        "kbridge",
        "--",
        "env",
        "OPS_API_TOKEN=from-the-environment",
        "/usr/bin/kbridge",
        "check",
        "--config",
        DEB_CONFIG,
    ]));
    assert!(
        check.stderr_str().contains("configuration OK"),
        "{}",
        check.stderr_str()
    );
    // A token written in place: the relay (group kbridge) reads it without
    // a warning, as the package installs the file; anyone else in another
    // group is warned (here root, whose group is not kbridge).
    ok(root("sed").args([
        "-i",
        "s|^Authorization = \"Bearer ${OPS_API_TOKEN}\"|Authorization = \"Bearer literal-token\"|",
        DEB_CONFIG,
    ]));
    let as_service = ok(root("runuser").args([
        "-u",
        "kbridge",
        "--",
        "/usr/bin/kbridge",
        "check",
        "--config",
        DEB_CONFIG,
    ]));
    assert!(
        !as_service.stderr_str().contains("warning"),
        "{}",
        as_service.stderr_str()
    );
    let as_root = ok(root("/usr/bin/kbridge").args(["check", "--config", DEB_CONFIG]));
    assert!(
        as_root
            .stderr_str()
            .contains("holds secrets in place (webhook.headers.Authorization)"),
        "{}",
        as_root.stderr_str()
    );
    let stranger = run(root("runuser").args([
        "-u",
        "nobody",
        "--",
        "/usr/bin/kbridge",
        "check",
        "--config",
        DEB_CONFIG,
    ]));
    assert_eq!(stranger.status.code(), Some(2));
    assert!(
        stranger.stderr_str().contains("Permission denied"),
        "{}",
        stranger.stderr_str()
    );

    // The version facts an operator checks first.
    let version = ok(Command::new("/usr/bin/kbridge").arg("--version")).stdout_str();
    for fact in [
        concat!("kbridge ", env!("CARGO_PKG_VERSION")),
        "librdkafka 2.",
        "builtin.features=",
        "SASL/SCRAM-SHA-256",
        "zstd",
        // What ships is the release-lto build with jemalloc.
        "allocator: jemalloc",
    ] {
        assert!(
            version.contains(fact),
            "--version lacks {fact:?}:\n{version}"
        );
    }

    // The man pages read as pages, by file and by name.
    let top = ok(Command::new("man")
        .args(["-l", "/usr/share/man/man1/kbridge.1.gz"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"))
    .stdout_str();
    for text in ["kbridge-run(1)", "EXIT STATUS", "/etc/kbridge/kbridge.toml"] {
        assert!(top.contains(text), "kbridge(1) lacks {text:?}:\n{top}");
    }
    let run_page = ok(Command::new("man")
        .arg("kbridge-run")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"))
    .stdout_str();
    assert!(run_page.contains("--config"), "{run_page}");

    // systemd accepts the installed unit as it is.
    let verify = ok(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert!(
        !verify.stderr_str().contains("kbridge.service:"),
        "systemd-analyze warns about the unit:\n{}",
        verify.stderr_str()
    );
    // And bash finds the completion where bash-completion looks.
    let complete = ok(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/kbridge && complete -p kbridge",
    ]));
    assert!(complete.stdout_str().contains("_kbridge"));

    // An operator's edit, then `dpkg -r`: the program goes, the config stays.
    ok(root("sh").args([
        "-c",
        &format!("echo '# edited by the operator' >> {DEB_CONFIG}"),
    ]));
    ok(root("dpkg").args(["--remove", "kbridge"]));
    assert_eq!(package_status(), "deinstall ok config-files");
    for gone in ["/usr/bin/kbridge", UNIT, "/usr/share/man/man1/kbridge.1.gz"] {
        assert!(!Path::new(gone).exists(), "{gone} survived dpkg -r");
    }
    let kept = ok(root("cat").arg(DEB_CONFIG)).stdout_str();
    assert!(
        kept.ends_with("# edited by the operator\n"),
        "dpkg -r must keep the operator's config"
    );

    // Installed again, the operator's version wins over the package's.
    ok(root("dpkg").args(["--install", &deb]));
    let again = ok(root("cat").arg(DEB_CONFIG)).stdout_str();
    assert!(again.ends_with("# edited by the operator\n"));
    assert_eq!(stat(DEB_CONFIG), "640 root kbridge");

    // Purged, nothing of it stays in /etc.
    ok(root("dpkg").args(["--purge", "kbridge"]));
    assert_eq!(package_status(), "");
    assert!(
        !Path::new(DEB_CONFIG).exists(),
        "dpkg --purge removes the config"
    );
}
