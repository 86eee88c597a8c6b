//! S3-compatible object storage as a [`Sink`]: one SigV4-signed PUT per profile.
//!
//! Key: `{prefix}/{node}/{namespace}/{pod}/{container}/{time}-{pid}.pb.gz`, each part
//! reduced to `[A-Za-z0-9._-]`; `_` stands for an unknown namespace or pod, and a
//! process outside any container is filed under its command name. Metadata
//! (`x-amz-meta-*`) carries the attribution: node, namespace, pod, container,
//! container-id, pod-uid, pid, comm, reason, time.
//!
//! Addressing is path-style (`https://host/bucket/key`, what MinIO, SeaweedFS and Ceph
//! expect) or virtual-hosted (`https://bucket.host/key`, AWS's default). Credentials
//! come from the configuration, a file (re-read at every attempt, so a rotated or
//! corrected Kubernetes secret is picked up), or the `AWS_*` environment.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::sigv4::{self, Credentials};
use crate::sink::{FailureKind, ProfileInfo, Sink, SinkError};

/// `http` or `https`, and `host[:port]` (a default port left out, as `Host` sends it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https`.
    pub tls: bool,
    /// `host` or `host:port`.
    pub authority: String,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/]`.
    ///
    /// Returns an error for another scheme, a missing host, a bad port, or a path,
    /// query or user part (an endpoint is a server, not a location in it).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "{s}: want http://HOST[:PORT] or https://HOST[:PORT]"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '@'])
            || rest.contains(char::is_whitespace)
        {
            return Err(format!(
                "{s}: want http(s)://HOST[:PORT], with no path, query or user"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            // [v6] or [v6]:port
            let Some((addr, after)) = v6.split_once(']') else {
                return Err(format!("{s}: unclosed [ in the host"));
            };
            if addr.is_empty() {
                return Err(format!("{s}: no host"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{s}: bad host"))?,
                ),
            };
            (&rest[..addr.len() + 2], port)
        } else {
            match rest.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(format!("{s}: an IPv6 address goes in brackets, [::1]:9000"))
                }
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s}: no host"));
        }
        let authority = match port {
            None => host.to_string(),
            Some(p) => match p.parse::<u16>() {
                Ok(443) if tls => host.to_string(),
                Ok(80) if !tls => host.to_string(),
                Ok(n) if n > 0 => format!("{host}:{n}"),
                _ => return Err(format!("{s}: bad port {p:?}")),
            },
        };
        Ok(Self {
            tls,
            authority: authority.to_ascii_lowercase(),
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// Where credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Given in the configuration.
    Static(Credentials),
    /// A file of `key = value` lines ([`parse_credentials`]), read at every attempt.
    File(PathBuf),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    Environment,
}

impl CredentialSource {
    /// The credentials now.
    ///
    /// Returns an error naming the file or variable that is missing or incomplete.
    pub fn load(&self) -> Result<Credentials, String> {
        match self {
            Self::Static(c) => Ok(c.clone()),
            Self::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("credentials file {}: {e}", p.display()))
                .and_then(|t| {
                    parse_credentials(&t)
                        .map_err(|e| format!("credentials file {}: {e}", p.display()))
                }),
            Self::Environment => {
                let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => Ok(Credentials {
                        access_key_id: id,
                        secret_access_key: secret,
                        session_token: var("AWS_SESSION_TOKEN"),
                    }),
                    _ => Err(
                        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give them in the config file"
                            .to_string(),
                    ),
                }
            }
        }
    }
}

/// Reads credentials from `key = value` lines: the AWS shared credentials file
/// (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`; its
/// `[default]` profile when it has sections) or an env file (`AWS_ACCESS_KEY_ID=…`).
/// `#` and `;` start comments.
///
/// Returns an error if the key id or the secret is missing.
pub fn parse_credentials(text: &str) -> Result<Credentials, String> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(s.trim().to_string());
            continue;
        }
        if section.as_deref().is_some_and(|s| s != "default") {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k
            .trim()
            .trim_start_matches("export ")
            .trim()
            .to_ascii_lowercase();
        let v = v.trim().trim_matches('"').to_string();
        match k.as_str() {
            "aws_access_key_id" | "access_key_id" => id = Some(v),
            "aws_secret_access_key" | "secret_access_key" => secret = Some(v),
            "aws_session_token" | "session_token" => token = Some(v),
            _ => {}
        }
    }
    match (id, secret) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok(Credentials {
            access_key_id: i,
            secret_access_key: s,
            session_token: token.filter(|t| !t.is_empty()),
        }),
        _ => Err("want aws_access_key_id and aws_secret_access_key".to_string()),
    }
}

/// An S3 bucket to deliver to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    /// The server.
    pub endpoint: Endpoint,
    /// The bucket.
    pub bucket: String,
    /// The signing region (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Path-style addressing instead of virtual-hosted.
    pub path_style: bool,
    /// This node's name: the key's second part and `x-amz-meta-node`.
    pub node: String,
    /// Where credentials come from.
    pub credentials: CredentialSource,
    /// The longest one PUT may take, connection included.
    pub timeout: Duration,
    /// CA certificates (PEM) to trust for HTTPS instead of the compiled-in Mozilla
    /// roots: a private CA's (MinIO, Ceph on premises).
    pub ca_file: Option<PathBuf>,
}

/// A key part: `[A-Za-z0-9._-]` kept, anything else `_`, at most 200 bytes; empty,
/// `.` and `..` become `_`-prefixed (never a path step).
pub fn key_part(s: &str) -> String {
    let mut o: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if o.is_empty() || o.chars().all(|c| c == '.') {
        o.insert(0, '_');
    }
    o
}

/// A prefix as keys start with it: each `/`-separated part made a [`key_part`], empty
/// parts dropped.
pub fn normalize_prefix(s: &str) -> String {
    s.split('/')
        .filter(|p| !p.is_empty())
        .map(key_part)
        .collect::<Vec<_>>()
        .join("/")
}

/// `YYYYmmddTHHMMSSZ` of `t` (UTC).
fn key_time(t: SystemTime) -> String {
    sigv4::amz_date(t)
}

/// The object key of a profile:
/// `{prefix}/{node}/{namespace}/{pod}/{container}/{time}-{pid}.pb.gz`.
pub fn object_key(prefix: &str, node: &str, info: &ProfileInfo) -> String {
    let container = info
        .container
        .clone()
        .or_else(|| {
            info.container_id
                .as_ref()
                .map(|id| id[..id.len().min(12)].to_string())
        })
        .unwrap_or_else(|| info.comm.clone());
    let parts = [
        key_part(node),
        key_part(info.namespace.as_deref().unwrap_or("_")),
        key_part(info.pod.as_deref().unwrap_or("_")),
        key_part(&container),
        format!("{}-{}.pb.gz", key_time(info.time), info.pid),
    ];
    let tail = parts.join("/");
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

/// A metadata value as sent: printable ASCII, anything else `_` (HTTP headers carry
/// no more, and S3 would refuse it), spaces canonical.
fn meta_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .collect();
    sigv4::canonical_value(&v)
}

/// `(name, value)` of the `x-amz-meta-*` headers of `info`, the known ones only.
pub fn metadata(node: &str, info: &ProfileInfo) -> Vec<(String, String)> {
    let time = {
        let secs = info
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (y, m, d) = sigv4::civil(secs / 86400);
        let s = secs % 86400;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    };
    let mut v = vec![("node", Some(node.to_string()))];
    v.extend([
        ("namespace", info.namespace.clone()),
        ("pod", info.pod.clone()),
        ("container", info.container.clone()),
        ("container-id", info.container_id.clone()),
        ("pod-uid", info.pod_uid.clone()),
        ("pid", Some(info.pid.to_string())),
        ("comm", Some(info.comm.clone())),
        ("reason", Some(info.reason.clone())),
        ("time", Some(time)),
    ]);
    v.into_iter()
        .filter_map(|(k, v)| {
            let v = meta_value(&v?);
            (!v.is_empty()).then(|| (format!("x-amz-meta-{k}"), v))
        })
        .collect()
}

/// The `Code` and `Message` of an S3 XML error body, unescaped.
pub fn parse_error(body: &str) -> (Option<String>, Option<String>) {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{tag}>"))? + start;
        let v = body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        (!v.is_empty()).then_some(v)
    };
    (field("Code"), field("Message"))
}

/// The content type of a gzipped pprof profile.
pub const CONTENT_TYPE: &str = "application/gzip";

/// The S3 sink: a configuration and an HTTP agent (connections are reused).
#[derive(Debug)]
pub struct S3 {
    config: S3Config,
    agent: ureq::Agent,
}

impl S3 {
    /// A sink for `config`; nothing is contacted yet.
    ///
    /// Returns an error if `ca_file` cannot be read or holds no PEM certificate.
    pub fn new(config: S3Config) -> Result<Self, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            let what = |e: String| format!("CA file {}: {e}", path.display());
            let pem = std::fs::read(path).map_err(|e| what(e.to_string()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item.map_err(|e| what(e.to_string()))? {
                    ureq::tls::PemItem::Certificate(c) => certs.push(c),
                    _ => continue,
                }
            }
            if certs.is_empty() {
                return Err(what("no PEM certificate in it".into()));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)));
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(config.timeout))
                .max_redirects(0)
                .user_agent(concat!("oomprof/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls.build())
                .build(),
        );
        Ok(Self { config, agent })
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// The key `info` is stored under.
    pub fn key(&self, info: &ProfileInfo) -> String {
        object_key(&self.config.prefix, &self.config.node, info)
    }

    /// (URL, Host, encoded path) of `key`.
    fn address(&self, key: &str) -> (String, String, String) {
        let c = &self.config;
        let key = sigv4::uri_encode(key, true);
        let (host, path) = if c.path_style {
            (
                c.endpoint.authority.clone(),
                format!("/{}/{key}", sigv4::uri_encode(&c.bucket, false)),
            )
        } else {
            (
                format!("{}.{}", c.bucket, c.endpoint.authority),
                format!("/{key}"),
            )
        };
        (
            format!("{}://{host}{path}", c.endpoint.scheme()),
            host,
            path,
        )
    }

    /// A signed request of `method` for `key`; `extra` headers are signed too.
    ///
    /// Returns an error if the credentials cannot be loaded.
    fn signed(
        &self,
        method: &str,
        key: &str,
        payload_hash: &str,
        extra: &[(String, String)],
    ) -> Result<(String, Vec<(String, String)>), String> {
        let creds = self.config.credentials.load()?;
        let (url, host, path) = self.address(key);
        let date = sigv4::amz_date(SystemTime::now());
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-content-sha256".into(), payload_hash.to_string()),
            ("x-amz-date".into(), date.clone()),
        ];
        if let Some(t) = &creds.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        headers.extend(extra.iter().cloned());
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let auth = sigv4::authorization(
            &creds,
            &self.config.region,
            "s3",
            &date,
            &sigv4::Request {
                method,
                path: &path,
                query: &[],
                headers: &refs,
                payload_hash,
            },
        );
        // `host` goes out as the URL's authority, which is what was signed.
        headers.retain(|(k, _)| k != "host");
        headers.push(("authorization".into(), auth));
        Ok((url, headers))
    }
}

impl Sink for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn put(&self, info: &ProfileInfo, data: &[u8]) -> Result<String, SinkError> {
        let key = self.key(info);
        let location = format!("s3://{}/{key}", self.config.bucket);
        let fail = |kind, why: String| SinkError {
            message: format!("S3 PUT {location}: {why}"),
            kind,
        };
        let mut extra = vec![("content-type".to_string(), CONTENT_TYPE.to_string())];
        extra.extend(metadata(&self.config.node, info));
        let (url, headers) = self
            .signed("PUT", &key, &sigv4::sha256_hex(data), &extra)
            .map_err(|e| fail(FailureKind::Refused, e))?;
        let mut req = self.agent.put(&url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send(data).map_err(|e| {
            let ep = &self.config.endpoint;
            fail(
                FailureKind::Unreachable,
                format!("{}://{}: {e}", ep.scheme(), ep.authority),
            )
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(location);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let why = match parse_error(&body) {
            (Some(code), Some(msg)) => format!("{status} {code}: {msg}"),
            (Some(code), None) => format!("{status} {code}"),
            _ => {
                let reason = resp.status().canonical_reason().unwrap_or("");
                format!("{status} {reason}").trim_end().to_string()
            }
        };
        let kind = if status >= 500 || status == 429 {
            FailureKind::Unreachable
        } else {
            FailureKind::Refused
        };
        Err(fail(kind, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn info() -> ProfileInfo {
        ProfileInfo {
            name: "x".into(),
            namespace: Some("prod".into()),
            pod: Some("api-7d9f-x2x".into()),
            container: Some("server".into()),
            container_id: Some("0123456789ab".repeat(5) + "cdef"),
            pod_uid: Some("8d5c2f9e-1a2b-4c3d-9e8f-001122334455".into()),
            pid: 4242,
            comm: "api".into(),
            reason: "oom".into(),
            // 2026-11-22T01:26:00Z
            time: UNIX_EPOCH + Duration::from_secs(1_795_310_760),
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        assert_eq!(
            object_key("oomprof", "node-1", &info()),
            "oomprof/node-1/prod/api-7d9f-x2x/server/20261122T012600Z-4242.pb.gz"
        );
        assert_eq!(
            object_key("", "n", &info()),
            "n/prod/api-7d9f-x2x/server/20261122T012600Z-4242.pb.gz"
        );
        // No pod: `_`; no container name: the id's first 12; no container: comm.
        let mut i = info();
        i.namespace = None;
        i.pod = None;
        i.container = None;
        assert_eq!(
            object_key("p", "n", &i),
            "p/n/_/_/0123456789ab/20261122T012600Z-4242.pb.gz"
        );
        i.container_id = None;
        i.comm = "my app".into();
        assert_eq!(
            object_key("p", "n", &i),
            "p/n/_/_/my_app/20261122T012600Z-4242.pb.gz"
        );
    }

    #[test]
    fn key_parts_are_sanitized() {
        assert_eq!(key_part("a/b"), "a_b");
        assert_eq!(key_part(".."), "_..");
        assert_eq!(key_part("."), "_.");
        assert_eq!(key_part(""), "_");
        assert_eq!(key_part("pöd ✓"), "p_d__");
        assert_eq!(key_part(&"x".repeat(300)).len(), 200);
        assert_eq!(normalize_prefix("/a//b c/../"), "a/b_c/_..");
        assert_eq!(normalize_prefix(""), "");
        let mut i = info();
        i.pod = Some("../../etc".into());
        i.namespace = Some("a/b".into());
        let k = object_key("p", "n/x", &i);
        assert_eq!(k, "p/n_x/a_b/.._.._etc/server/20261122T012600Z-4242.pb.gz");
        assert!(!k.split('/').any(|p| p == ".." || p == "."));
    }

    #[test]
    fn metadata_carries_the_attribution() {
        let m = metadata("node-1", &info());
        let get = |k: &str| {
            m.iter()
                .find(|(n, _)| n == &format!("x-amz-meta-{k}"))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("node"), Some("node-1"));
        assert_eq!(get("namespace"), Some("prod"));
        assert_eq!(get("pod"), Some("api-7d9f-x2x"));
        assert_eq!(get("container"), Some("server"));
        assert_eq!(get("pid"), Some("4242"));
        assert_eq!(get("comm"), Some("api"));
        assert_eq!(get("reason"), Some("oom"));
        assert_eq!(get("time"), Some("2026-11-22T01:26:00Z"));
        let mut i = info();
        i.pod = None;
        i.comm = "tab\there  é".into();
        let m = metadata("n", &i);
        assert!(!m.iter().any(|(k, _)| k == "x-amz-meta-pod"));
        assert!(
            m.contains(&("x-amz-meta-comm".into(), "tab_here _".into())),
            "{m:?}"
        );
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8333").unwrap();
        assert_eq!((e.tls, e.authority.as_str()), (false, "127.0.0.1:8333"));
        let e = Endpoint::parse("https://S3.us-east-1.amazonaws.com:443/").unwrap();
        assert_eq!(
            (e.tls, e.authority.as_str()),
            (true, "s3.us-east-1.amazonaws.com")
        );
        assert_eq!(Endpoint::parse("http://h:80").unwrap().authority, "h");
        assert_eq!(
            Endpoint::parse("http://[::1]:9000").unwrap().authority,
            "[::1]:9000"
        );
        for bad in [
            "ftp://h",
            "h:9000",
            "http://",
            "http://h/bucket",
            "http://h?x",
            "http://u@h",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://::1:9000",
            "http://[::1",
            "http://[::1]x",
            "http://[]:9000",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addressing_styles() {
        let mut c = S3Config {
            endpoint: Endpoint::parse("http://127.0.0.1:8333").unwrap(),
            bucket: "profiles".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            path_style: true,
            node: "n".into(),
            credentials: CredentialSource::Environment,
            timeout: Duration::from_secs(5),
            ca_file: None,
        };
        let s = S3::new(c.clone()).unwrap();
        assert_eq!(
            s.address("a b/c"),
            (
                "http://127.0.0.1:8333/profiles/a%20b/c".into(),
                "127.0.0.1:8333".into(),
                "/profiles/a%20b/c".into()
            )
        );
        c.path_style = false;
        c.endpoint = Endpoint::parse("https://s3.eu-west-1.amazonaws.com").unwrap();
        let s = S3::new(c).unwrap();
        assert_eq!(
            s.address("k"),
            (
                "https://profiles.s3.eu-west-1.amazonaws.com/k".into(),
                "profiles.s3.eu-west-1.amazonaws.com".into(),
                "/k".into()
            )
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let c = |p: &str| S3Config {
            endpoint: Endpoint::parse("https://h").unwrap(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            path_style: true,
            node: "n".into(),
            credentials: CredentialSource::Environment,
            timeout: Duration::from_secs(5),
            ca_file: Some(p.into()),
        };
        let e = S3::new(c("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.starts_with("CA file /nonexistent/ca.pem: "), "{e}");
        let f = std::env::temp_dir().join(format!("oomprof-ca-{}.pem", std::process::id()));
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = S3::new(c(f.to_str().unwrap())).unwrap_err();
        assert!(e.ends_with(": no PEM certificate in it"), "{e}");
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn error_bodies() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><Resource>/profiles/a</Resource></Error>"#;
        assert_eq!(
            parse_error(body),
            (
                Some("SignatureDoesNotMatch".into()),
                Some("The request signature we calculated does not match the signature you provided. Check your key and signing method.".into())
            )
        );
        assert_eq!(
            parse_error(
                "<Error><Code>NoSuchBucket</Code><Message>a &amp; b\n  &lt;c&gt;</Message></Error>"
            ),
            (Some("NoSuchBucket".into()), Some("a & b <c>".into()))
        );
        assert_eq!(parse_error("not xml"), (None, None));
        assert_eq!(parse_error("<Code></Code>"), (None, None));
        assert_eq!(parse_error("<Code>x"), (None, None));
    }

    #[test]
    fn credential_files() {
        let c = parse_credentials(
            "# k8s secret\n[other]\naws_access_key_id = NO\n[default]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = T\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.secret_access_key.as_str(),
                c.session_token.as_deref()
            ),
            ("AK", "SK", Some("T"))
        );
        let c =
            parse_credentials("export AWS_ACCESS_KEY_ID=\"A\"\nAWS_SECRET_ACCESS_KEY=S\n").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("A", "S")
        );
        assert_eq!(c.session_token, None);
        for bad in [
            "",
            "aws_access_key_id = A",
            "aws_secret_access_key = S",
            "[x]\naws_access_key_id=A\naws_secret_access_key=S",
        ] {
            assert!(parse_credentials(bad).is_err(), "{bad}");
        }
        let e = CredentialSource::File("/nonexistent/creds".into())
            .load()
            .unwrap_err();
        assert!(e.contains("/nonexistent/creds"), "{e}");
    }

    /// A PUT to a port nothing listens on: a one-line error naming the object, and
    /// the kind that pauses the uploader.
    #[test]
    fn an_endpoint_that_is_down_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = S3::new(S3Config {
            endpoint: Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            prefix: "p".into(),
            path_style: true,
            node: "n".into(),
            credentials: CredentialSource::Static(Credentials {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: None,
            }),
            timeout: Duration::from_secs(5),
            ca_file: None,
        })
        .unwrap();
        let e = s.put(&info(), b"x").unwrap_err();
        assert_eq!(e.kind, FailureKind::Unreachable);
        assert!(
            e.message.starts_with("S3 PUT s3://b/p/n/prod/api-7d9f-x2x/server/20261122T012600Z-4242.pb.gz: http://127.0.0.1:"),
            "{}",
            e.message
        );
        assert!(!e.message.contains('\n'), "{}", e.message);
    }
}
