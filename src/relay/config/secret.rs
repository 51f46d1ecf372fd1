//! A secret in the configuration: written in place (usually `${VAR}`), or
//! read from a file at start — `{ file = "/run/credentials/kbridge.service/token" }`
//! — so that systemd's `LoadCredential=` (or a Kubernetes secret volume)
//! can hand it over without it ever sitting in the config or the
//! environment.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum Secret {
    Value(String),
    File { file: PathBuf },
}

impl Secret {
    /// The secret's value; a file's content loses its trailing newline.
    /// `what` names the key in an error.
    pub(crate) fn resolve(&self, what: &str) -> Result<String> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::File { file } => {
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!(
                        "{what}: cannot read {} (is the file there, readable by kbridge's user, and text?)",
                        file.display()
                    )
                })?;
                Ok(text.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }
}

/// Never the value: a file's path, or that a value is set.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("<redacted>"),
            Secret::File { file } => write!(f, "{{ file = {} }}", file.display()),
        }
    }
}

/// `value`, or `<redacted>` when `key` names a secret (for `Debug`,
/// which tests and error paths may print).
pub(super) fn redacted(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    if ["password", "secret", "token", "authorization", "key"]
        .iter()
        .any(|s| k.contains(s))
    {
        "<redacted>".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_secret_loses_its_trailing_newline_only() {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), "Bearer  t0k\n\r\n").expect("write");
        let s = Secret::File {
            file: f.path().to_path_buf(),
        };
        assert_eq!(s.resolve("x").unwrap(), "Bearer  t0k");
        let missing = Secret::File {
            file: "/nonexistent/kbridge-token".into(),
        };
        let e = format!(
            "{:#}",
            missing
                .resolve("webhook header 'Authorization'")
                .unwrap_err()
        );
        assert!(
            e.contains("webhook header 'Authorization'")
                && e.contains("/nonexistent/kbridge-token"),
            "{e}"
        );
        assert_eq!(
            format!("{:?}", Secret::Value("hunter2".into())),
            "<redacted>"
        );
    }
}
