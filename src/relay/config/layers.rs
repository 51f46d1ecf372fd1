//! The layering: built-in defaults < TOML file < `KBRIDGE_*` environment
//! variables < command-line flags (figment), with `${VAR}` filled in from
//! the environment after parsing the file (so a commented-out line never
//! demands a variable).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use figment::providers::{Env, Serialized};
use figment::{Figment, Metadata, Provider};

use super::overrides::Overrides;
use super::schema::RelayConfig;

/// Top-level keys a `KBRIDGE_*` variable may set (nested with `__`, e.g.
/// `KBRIDGE_WEBHOOK__URL`). Others, like `KBRIDGE_LOG` (the CLI's log
/// filter) or test variables, are not config.
const ENV_KEYS: &[&str] = &[
    "brokers",
    "topics",
    "group",
    "group_instance_id",
    "offset_reset",
    "dead_letter_topic",
    "preset",
    "kafka",
    "webhook",
    "retry",
    "concurrency",
    "max_pending",
    "max_message_bytes",
    "max_pending_bytes",
    "drain_timeout",
    "commit_interval",
    "topic_wait",
    "jq",
    "audit",
    "metrics",
];

impl RelayConfig {
    /// Loads and checks the layered configuration.
    pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let mut figment = Figment::new();
        let mut notices = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let mut value: toml::Value = toml::from_str(&text)
                .map_err(|e| anyhow!("{} is not valid TOML: {e}", path.display()))?;
            notices.extend(readable_literal_secrets(path, &value));
            expand_env(&mut value, &mut Vec::new())
                .with_context(|| format!("in {}", path.display()))?;
            figment = figment.merge(Named {
                inner: Serialized::defaults(value),
                name: format!("the config file {}", path.display()),
            });
        }
        figment = figment
            .merge(
                Env::prefixed("KBRIDGE_")
                    .split("__")
                    // figment lowercases the keys only after this filter.
                    .filter(|k| {
                        let top = k.as_str().split('.').next().unwrap_or("");
                        ENV_KEYS.iter().any(|key| key.eq_ignore_ascii_case(top))
                    }),
            )
            .merge(Named {
                inner: Serialized::defaults(overrides),
                name: "the command line".into(),
            });
        let mut config: RelayConfig = figment
            .extract()
            .map_err(|e| anyhow!("invalid configuration: {}", describe(e)))?;
        config.notices.extend(notices);
        // A route's map_file is found beside the config file that names it.
        if let Some(dir) = file.and_then(Path::parent) {
            for route in &mut config.routes {
                if let Some(map) = &route.map_file
                    && map.is_relative()
                {
                    route.map_file = Some(dir.join(map));
                }
            }
        }
        if !config.routes.is_empty() && !config.webhook.url.is_empty() {
            config.notices.push(
                "the top-level [webhook] is not used when [[route]] is present: each route sends to its own [route.webhook]".into(),
            );
        }
        config.check()?;
        Ok(config)
    }

    /// These routes instead of the loaded ones, checked as a file's would
    /// be (`kbridge demo` builds its routes in code).
    pub(crate) fn with_routes(mut self, routes: Vec<super::route::RouteConfig>) -> Result<Self> {
        self.routes = routes;
        self.check()?;
        Ok(self)
    }
}

/// A layer under a name a person knows (figment would name the line of
/// code that built it).
struct Named<P> {
    inner: P,
    name: String,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<figment::value::Map<figment::Profile, figment::value::Dict>> {
        self.inner.data()
    }
}

/// figment's errors as `key: what was wrong (in which layer)`, without the
/// profile name it prefixes to every key.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let whence = e
                .metadata
                .as_ref()
                .map(|m| format!(" (in {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{whence}", e.kind)
            } else {
                format!("`{key}`: {}{whence}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A warning when the file holds a secret written in place (not `${VAR}`,
/// not `{ file = … }`) and others may read it: any user, or a group that is
/// not the relay's own. (The package installs the config 0640 root:kbridge
/// and runs the relay in group kbridge: that group is the relay itself.)
fn readable_literal_secrets(path: &Path, doc: &toml::Value) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.permissions().mode();
    // /proc/self belongs to the process's effective user and group.
    let own_group = std::fs::metadata("/proc/self").ok().map(|m| m.gid());
    let group_is_others = mode & 0o040 != 0 && own_group != Some(meta.gid());
    if mode & 0o004 == 0 && !group_is_others {
        return None;
    }
    let literal = |v: &toml::Value| {
        v.as_str()
            .is_some_and(|s| !s.is_empty() && !s.contains("${"))
    };
    let secret_name = |k: &str| {
        let k = k.to_ascii_lowercase();
        [
            "password",
            "secret",
            "token",
            "authorization",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|s| k.contains(s))
    };
    let mut keys = Vec::new();
    if let Some(kafka) = doc.get("kafka").and_then(toml::Value::as_table) {
        for (k, v) in kafka {
            if secret_name(k) && literal(v) {
                keys.push(format!("kafka.\"{k}\""));
            }
        }
    }
    if let Some(webhook) = doc.get("webhook") {
        if let Some(headers) = webhook.get("headers").and_then(toml::Value::as_table) {
            for (k, v) in headers {
                if secret_name(k) && literal(v) {
                    keys.push(format!("webhook.headers.{k}"));
                }
            }
        }
        if webhook
            .get("basic_auth")
            .and_then(|b| b.get("password"))
            .is_some_and(literal)
        {
            keys.push("webhook.basic_auth.password".into());
        }
        if let Some(url) = webhook.get("url").and_then(toml::Value::as_str)
            && !url.contains("${")
            && crate::redact::url(url) != url
        {
            keys.push("webhook.url".into());
        }
        if let Some(proxy) = webhook.get("proxy").and_then(toml::Value::as_str)
            && !proxy.contains("${")
            && proxy.contains('@')
        {
            keys.push("webhook.proxy".into());
        }
    }
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "{} holds secrets in place ({}) and is readable by others than kbridge (mode {:o}); run `chmod 600 {}` (or 640 with the relay's group, as the package installs it), or move them to ${{VAR}} or {{ file = \"…\" }}",
        path.display(),
        keys.join(", "),
        mode & 0o777,
        path.display()
    ))
}

/// Replaces `${VAR}` in every string of a parsed TOML document.
fn expand_env(value: &mut toml::Value, path: &mut Vec<String>) -> Result<()> {
    match value {
        toml::Value::String(s) => *s = expand_str(s).with_context(|| path.join("."))?,
        toml::Value::Array(items) => {
            for item in items {
                expand_env(item, path)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(k.clone());
                expand_env(v, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("unclosed '${{' in a value"))?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            anyhow!(
                "the value refers to ${{{name}}}, but the environment variable {name} is not set"
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::config::schema::OffsetReset;
    use crate::relay::config::secret::Secret;
    use std::time::Duration;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_seeds() {
        let f = write("topics = \"event\"\n[webhook]\nurl = \"http://127.0.0.1:1/alerts\"\n");
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.group, "omp");
        assert_eq!(c.offset_reset, OffsetReset::Latest);
        assert_eq!(c.topics, vec!["event"]);
        assert_eq!(c.webhook.timeout, Duration::from_secs(10));
        assert_eq!(c.drain_timeout, Duration::from_secs(20));
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn flags_override_the_file() {
        let f = write("topics = [\"a\"]\ngroup = \"g\"\n[webhook]\nurl = \"http://x/\"\n");
        let o = Overrides {
            group: Some("flag".into()),
            topics: Some(vec!["b".into()]),
            ..Default::default()
        };
        let c = RelayConfig::load(Some(f.path()), &o).unwrap();
        assert_eq!(
            (c.group.as_str(), c.topics),
            ("flag", vec!["b".to_string()])
        );
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_redacted() {
        // SAFETY: a variable name only this test uses.
        unsafe { std::env::set_var("KBRIDGE_TEST_SECRET_TOKEN", "s3cr3t") };
        let f = write(
            "topics = \"t\"\n# ${NOT_SET_ANYWHERE} in a comment is fine\n[webhook]\nurl = \"http://x/\"\n[webhook.headers]\nAuthorization = \"Bearer ${KBRIDGE_TEST_SECRET_TOKEN}\"\n",
        );
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(
            c.webhook.headers["Authorization"].resolve("h").unwrap(),
            "Bearer s3cr3t"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_variables_and_typos_are_clear_errors() {
        let f = write("topics = \"t\"\n[webhook]\nurl = \"${KBRIDGE_TEST_UNSET_VAR}\"\n");
        let e = format!(
            "{:#}",
            RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap_err()
        );
        assert!(
            e.contains("KBRIDGE_TEST_UNSET_VAR is not set") && e.contains("webhook.url"),
            "{e}"
        );
        let f = write("topics = \"t\"\nconcurrancy = 3\n[webhook]\nurl = \"http://x/\"\n");
        let e = format!(
            "{:#}",
            RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("concurrancy"), "{e}");
    }

    #[test]
    fn static_membership_and_other_keys_from_the_file_or_the_environment() {
        let f = write(
            "topics = \"t\"\ngroup_instance_id = \"host-1\"\n[webhook]\nurl = \"http://x/\"\n",
        );
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.group_instance_id.as_deref(), Some("host-1"));
        let f = write("topics = \"t\"\n[webhook]\nurl = \"http://x/\"\n");
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.group_instance_id, None);
        // SAFETY: no other test reads these variables.
        unsafe {
            std::env::set_var("KBRIDGE_GROUP_INSTANCE_ID", "host-2");
            std::env::set_var("KBRIDGE_WEBHOOK__TIMEOUT", "3s");
        }
        let c = RelayConfig::load(Some(f.path()), &Overrides::default());
        unsafe {
            std::env::remove_var("KBRIDGE_GROUP_INSTANCE_ID");
            std::env::remove_var("KBRIDGE_WEBHOOK__TIMEOUT");
        }
        let c = c.unwrap();
        assert_eq!(c.group_instance_id.as_deref(), Some("host-2"));
        assert_eq!(c.webhook.timeout, std::time::Duration::from_secs(3));
    }

    #[test]
    fn webhook_tls_and_credentials_from_files() {
        let f = write(
            "topics = \"t\"\n[webhook]\nurl = \"https://ops/\"\nheaders = { Authorization = { file = \"/run/credentials/kbridge.service/token\" }, X-Team = \"sre\" }\nbasic_auth = { user = \"ops\", password = { file = \"/p\" } }\n[webhook.tls]\nca_file = \"/etc/kbridge/ca.pem\"\n",
        );
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(
            c.webhook.headers["Authorization"],
            Secret::File {
                file: "/run/credentials/kbridge.service/token".into()
            }
        );
        assert_eq!(c.webhook.headers["X-Team"], Secret::Value("sre".into()));
        assert_eq!(
            c.webhook.basic_auth.as_ref().map(|b| b.user.as_str()),
            Some("ops")
        );
        assert_eq!(
            c.webhook.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/kbridge/ca.pem"))
        );
        for (text, expected) in [
            (
                "[webhook.tls]\nclient_cert_file = \"/c.pem\"\n",
                "client_cert_file and client_key_file go together",
            ),
            ("[webhook.tls]\nverify = false\n", "verify"),
        ] {
            let f = write(&format!(
                "topics = \"t\"\n[webhook]\nurl = \"https://ops/\"\n{text}"
            ));
            let e = RelayConfig::load(Some(f.path()), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e}");
        }
        let f = write(
            "topics = \"t\"\n[webhook]\nurl = \"http://ops/\"\n[webhook.tls]\ninsecure_skip_verify = true\n",
        );
        let e = RelayConfig::load(Some(f.path()), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not https"), "{e}");
    }

    #[test]
    fn a_readable_file_with_secrets_in_place_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let text = "topics = \"t\"\n[webhook]\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=abc\"\n[kafka]\n\"sasl.password\" = \"hunter2\"\n";
        let f = write(text);
        let mode = |m: u32| std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(m));
        mode(0o644).unwrap();
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        let notice = c.notices.join("\n");
        assert!(notice.contains("chmod 600"), "{notice}");
        assert!(
            notice.contains("sasl.password") && notice.contains("webhook.url"),
            "{notice}"
        );
        assert!(
            !notice.contains("hunter2") && !notice.contains("abc"),
            "{notice}"
        );
        mode(0o604).unwrap();
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.notices.len(), 1, "readable by any user");
        // 0640 in the relay's own group (the test's: it made the file), as
        // the package installs it: not a warning.
        for quiet in [0o600, 0o640] {
            mode(quiet).unwrap();
            let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
            assert!(c.notices.is_empty(), "{quiet:o}: {:?}", c.notices);
        }
        let f = write(
            "topics = \"t\"\n[webhook]\nurl = \"http://x/\"\n[kafka]\n\"sasl.password\" = \"${HOME}\"\n",
        );
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert!(c.notices.is_empty(), "{:?}", c.notices);
    }

    #[test]
    fn a_bad_value_names_its_key_and_file_not_kbridge_s_source() {
        let f = write(
            "topics = \"t\"\nconcurrency = \"many\"\n[webhook]\nurl = \"http://x/\"\ntimeout = true\n",
        );
        let e = RelayConfig::load(Some(f.path()), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`concurrency`") || e.contains("`webhook.timeout`"),
            "{e}"
        );
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(!e.contains("src/") && !e.contains(".rs:"), "{e}");
    }

    #[test]
    fn metrics_listen_on_loopback_unless_a_host_is_given() {
        for (given, expected) in [
            ("\":9464\"", "127.0.0.1:9464"),
            ("9464", "127.0.0.1:9464"),
            ("\"0.0.0.0:9464\"", "0.0.0.0:9464"),
        ] {
            let f = write(&format!(
                "topics = \"t\"\n[webhook]\nurl = \"http://x/\"\n[metrics]\naddr = {given}\n"
            ));
            let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
            assert_eq!(
                c.metrics.addr.map(|a| a.to_string()).as_deref(),
                Some(expected)
            );
        }
        let f = write(
            "topics = \"t\"\n[webhook]\nurl = \"http://x/\"\n[metrics]\naddr = \"everywhere\"\n",
        );
        let e = RelayConfig::load(Some(f.path()), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.addr") && e.contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn kafka_settings_that_break_at_least_once_are_refused() {
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            let f = write(&format!(
                "topics = \"t\"\n[webhook]\nurl = \"http://x/\"\n[kafka]\n\"{key}\" = \"true\"\n"
            ));
            let e = format!(
                "{:#}",
                RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap_err()
            );
            assert!(e.contains(key) && e.contains("remove it"), "{e}");
        }
    }

    #[test]
    fn a_webhook_is_required() {
        let e = RelayConfig::load(
            None,
            &Overrides {
                topics: Some(vec!["t".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no webhook URL"), "{e}");
    }
}
