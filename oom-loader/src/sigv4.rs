//! AWS Signature Version 4 for request headers ("Authorization: AWS4-HMAC-SHA256 …"),
//! as S3 and every S3-compatible store check it.
//!
//! canonical request (method, URI, sorted query, sorted lower-case headers, signed
//! header list, payload hash) ──SHA-256──▶ string to sign (algorithm, time, scope,
//! hash) ──HMAC with the key derived from secret/date/region/service──▶ signature.
//!
//! The steps follow AWS's "Create a signed AWS API request" and the S3 API
//! reference's "Signature Calculations for the Authorization Header"; the unit tests
//! are the vectors those pages publish. SHA-256 and HMAC are ring's.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

/// The SHA-256 of an empty payload, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key pair, and the session token that temporary credentials carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials (`x-amz-security-token`).
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    // Never the secret or the token: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A request to sign.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// The path as sent, already URI-encoded ([`uri_encode`] each segment; S3 paths
    /// are not encoded twice).
    pub path: &'a str,
    /// Query parameters, not encoded (this encodes and sorts them).
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to sign (`host` and `x-amz-date` among them), any case, any order.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the payload (also sent as `x-amz-content-sha256` to S3).
    pub payload_hash: &'a str,
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(b: &[u8]) -> String {
    use fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// URI-encodes `s` the way SigV4 wants: every byte but `A-Za-z0-9-._~` as `%XX`
/// (upper-case hex), `/` kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                o.push(b as char)
            }
            b'/' if keep_slash => o.push('/'),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// A header value as SigV4 canonicalizes it: trimmed, inner runs of spaces one space.
/// Send the value in this form too, so the server's canonical form is the same.
pub fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYYMMDDTHHMMSSZ` (`x-amz-date`) of `t`, in UTC; the epoch for times before it.
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil(secs / 86400);
    let s = secs % 86400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The proleptic Gregorian date of day `days` after 1970-01-01 (H. Hinnant's
/// civil_from_days, for non-negative days).
pub(crate) fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The canonical request and the signed-header list of `req`.
fn canonical(req: &Request<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated names are one line, values joined with commas in the order given.
    let mut lines: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        match lines.last_mut() {
            Some((lk, lv)) if *lk == k => {
                lv.push(',');
                lv.push_str(&v);
            }
            _ => lines.push((k, v)),
        }
    }
    let signed = lines
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut c = format!("{}\n{}\n{query}\n", req.method, req.path);
    for (k, v) in &lines {
        c.push_str(&format!("{k}:{v}\n"));
    }
    c.push_str(&format!("\n{signed}\n{}", req.payload_hash));
    (c, signed)
}

/// The `Authorization` header value for `req`, signed at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`, the request's `x-amz-date`) for `region` and `service`.
pub fn authorization(
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    req: &Request<'_>,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (canonical, signed) = canonical(req);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(key.as_ref(), part.as_bytes());
    }
    let signature = hex(hmac_sha256(key.as_ref(), to_sign.as_bytes()).as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The S3 API reference's example key pair ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk").
    fn s3_example() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    const S3_DATE: &str = "20130524T000000Z";
    const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signature(auth: &str) -> &str {
        auth.rsplit("Signature=").next().unwrap()
    }

    /// "Example: GET Object": the first ten bytes of test.txt.
    #[test]
    fn the_s3_get_object_example() {
        let auth = authorization(
            &s3_example(),
            "us-east-1",
            "s3",
            S3_DATE,
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &[
                    ("Host", S3_HOST),
                    ("Range", "bytes=0-9"),
                    ("x-amz-content-sha256", EMPTY_SHA256),
                    ("x-amz-date", S3_DATE),
                ],
                payload_hash: EMPTY_SHA256,
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// "Example: PUT Object": a key with `$` (encoded `%24`), a signed payload and a
    /// header of the caller's.
    #[test]
    fn the_s3_put_object_example() {
        let body = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            body,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", uri_encode("test$file.text", true));
        assert_eq!(path, "/test%24file.text");
        let auth = authorization(
            &s3_example(),
            "us-east-1",
            "s3",
            S3_DATE,
            &Request {
                method: "PUT",
                path: &path,
                query: &[],
                headers: &[
                    ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("Host", S3_HOST),
                    ("x-amz-date", S3_DATE),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                    ("x-amz-content-sha256", &body),
                ],
                payload_hash: &body,
            },
        );
        assert!(
            auth.contains(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            ),
            "{auth}"
        );
        assert_eq!(
            signature(&auth),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    /// "GET Bucket Lifecycle" (a parameter without value) and "Get Bucket (List
    /// Objects)" (two parameters, given unsorted here).
    #[test]
    fn the_s3_bucket_examples() {
        for (query, want) in [
            (
                &[("lifecycle", "")][..],
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                &[("prefix", "J"), ("max-keys", "2")][..],
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ] {
            let auth = authorization(
                &s3_example(),
                "us-east-1",
                "s3",
                S3_DATE,
                &Request {
                    method: "GET",
                    path: "/",
                    query,
                    headers: &[
                        ("Host", S3_HOST),
                        ("x-amz-content-sha256", EMPTY_SHA256),
                        ("x-amz-date", S3_DATE),
                    ],
                    payload_hash: EMPTY_SHA256,
                },
            );
            assert_eq!(signature(&auth), want, "{query:?}");
        }
    }

    /// The generic SigV4 test suite's `get-vanilla` and `post-vanilla` (service
    /// `service`, AKIDEXAMPLE), and get-vanilla's canonical request hash.
    #[test]
    fn the_test_suite_vanilla_requests() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let req = |method| Request {
            method,
            path: "/",
            query: &[],
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            payload_hash: EMPTY_SHA256,
        };
        let (c, _) = canonical(&req("GET"));
        assert_eq!(
            sha256_hex(c.as_bytes()),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            authorization(
                &creds,
                "us-east-1",
                "service",
                "20150830T123600Z",
                &req("GET")
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let post = authorization(
            &creds,
            "us-east-1",
            "service",
            "20150830T123600Z",
            &req("POST"),
        );
        assert_eq!(
            signature(&post),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn values_are_trimmed_and_repeated_headers_joined() {
        let (c, signed) = canonical(&Request {
            method: "PUT",
            path: "/k",
            query: &[],
            headers: &[("X-B", "  two   words "), ("x-a", "1"), ("X-A", "2")],
            payload_hash: "h",
        });
        assert_eq!(c, "PUT\n/k\n\nx-a:1,2\nx-b:two words\n\nx-a;x-b\nh");
        assert_eq!(signed, "x-a;x-b");
    }

    #[test]
    fn encoding_and_dates() {
        assert_eq!(uri_encode("a b/c~d+é", true), "a%20b/c~d%2B%C3%A9");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(
            amz_date(UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160)),
            "20150830T123600Z"
        );
        assert_eq!(
            amz_date(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
    }

    #[test]
    fn debug_hides_the_secret() {
        let mut c = s3_example();
        c.session_token = Some("tok".into());
        let d = format!("{c:?}");
        assert!(d.contains("AKIAIOSFODNN7EXAMPLE"), "{d}");
        assert!(!d.contains("EXAMPLEKEY") && !d.contains("tok\""), "{d}");
    }
}
