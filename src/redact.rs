//! Secrets out of what a person reads: webhook URLs carry them too —
//! DingTalk and WeCom robots take an `access_token` / `key` query
//! parameter, Feishu a token as the last path segment, some targets
//! `user:password@`. Every URL kbridge logs, reports or writes into a dead
//! letter goes through [`url`].

/// `url` with its query values, user info and any path segment that looks
/// like a token replaced by `***`:
/// `https://oapi.dingtalk.com/robot/send?access_token=***`.
pub(crate) fn url(url: &str) -> String {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(mut parsed) = parsed else {
        // Not an http URL (`user:password@host` parses with the scheme
        // `user`): any part of it may be a secret.
        return "(not an http URL)".to_string();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("***");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let query = names
            .iter()
            .map(|k| format!("{k}=***"))
            .collect::<Vec<_>>()
            .join("&");
        parsed.set_query(Some(&query));
    }
    let segments: Option<Vec<String>> = parsed.path_segments().map(|s| {
        s.map(|seg| {
            if looks_like_a_token(seg) {
                "***".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect()
    });
    if let Some(segments) = segments {
        parsed.set_path(&segments.join("/"));
    }
    parsed.to_string().replace("%2A%2A%2A", "***")
}

/// A path segment of 16 or more letters, digits, `-` and `_`, with both
/// letters and digits: a UUID, a hex or base64url token — not `api`, `v1`
/// or `alerts`.
fn looks_like_a_token(seg: &str) -> bool {
    seg.len() >= 16
        && seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && seg.chars().any(|c| c.is_ascii_digit())
        && seg.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_urls_are_redacted() {
        let cases = [
            (
                "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef",
                "https://oapi.dingtalk.com/robot/send?access_token=***",
            ),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa",
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
            ),
            (
                "https://open.feishu.cn/open-apis/bot/v2/hook/2c3f6e8a-1b2c-4d5e-9f00-123456789abc",
                "https://open.feishu.cn/open-apis/bot/v2/hook/***",
            ),
            (
                "https://ops:s3cret@cmdb.example/api/v1/alerts",
                "https://***@cmdb.example/api/v1/alerts",
            ),
            (
                "http://127.0.0.1:8080/api/v1/alert/push/easyops",
                "http://127.0.0.1:8080/api/v1/alert/push/easyops",
            ),
        ];
        for (raw, shown) in cases {
            assert_eq!(url(raw), shown, "{raw}");
        }
        assert_eq!(url("ops:s3cret@cmdb?token=abc"), "(not an http URL)");
        assert_eq!(url("not a url"), "(not an http URL)");
    }
}
