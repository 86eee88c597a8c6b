//! What the guest wrote on its second serial port (the protocol of tests/vm/guest.sh).

use std::collections::BTreeMap;

/// One `CASE name key=value ...` line.
#[derive(Debug, Default)]
pub struct Case {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl Case {
    /// The value of `key`, or "" when the guest did not report it.
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

/// The whole report of one guest.
#[derive(Debug, Default)]
pub struct Report {
    pub info: BTreeMap<String, String>,
    pub cases: Vec<Case>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Set when the guest's watchdog fired.
    pub timeout: Option<String>,
    /// The guest reached its last line.
    pub done: bool,
    /// Lines that broke the protocol (a truncated file, a bad base64 line).
    pub errors: Vec<String>,
}

impl Report {
    /// The case called `name`.
    pub fn case(&self, name: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.name == name)
    }
}

fn fields<'a>(words: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses the serial output (a tty: lines may end in `\r\n`).
pub fn parse(text: &str) -> Report {
    let mut r = Report::default();
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("INFO") => r.info.extend(fields(words)),
            Some("CASE") => {
                let name = words.next().unwrap_or("").to_string();
                r.cases.push(Case {
                    name,
                    fields: fields(words),
                });
            }
            Some("FILE") => {
                let name = words.next().unwrap_or("").to_string();
                let size: usize = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let mut b64 = String::new();
                let mut ended = false;
                for l in lines.by_ref() {
                    let l = l.trim_end_matches('\r');
                    if l == "END" {
                        ended = true;
                        break;
                    }
                    b64.push_str(l.trim());
                }
                match decode_base64(&b64) {
                    Some(data) if ended && data.len() == size => {
                        r.files.insert(name, data);
                    }
                    Some(data) => r.errors.push(format!(
                        "file {name}: {} of {size} bytes{}",
                        data.len(),
                        if ended { "" } else { ", no END" }
                    )),
                    None => r.errors.push(format!("file {name}: bad base64")),
                }
            }
            Some("TIMEOUT") => r.timeout = Some(line.to_string()),
            Some("DONE") => r.done = true,
            _ => {}
        }
    }
    r
}

/// Standard base64 (RFC 4648, `=` padding), as busybox's `base64` writes it.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pads = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pads > 2 || (pads > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pads] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pads as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pads]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert!(decode_base64("Zm9").is_none());
        assert!(decode_base64("Zg==Zm9v").is_none());
        assert!(decode_base64("Z!==").is_none());
    }

    #[test]
    fn parses_cases_and_files() {
        let r = parse(
            "INFO kernel=6.1.0 cgroup=v2\r\nnoise\r\nCASE oom_default kind=oom pid=7 profile=a.pb.gz\r\n\
             FILE a.pb.gz 3\r\nZm9v\r\nEND\r\nFILE b 9\r\nZm9v\r\nEND\r\nDONE\r\n",
        );
        assert_eq!(r.info["kernel"], "6.1.0");
        let c = r.case("oom_default").unwrap();
        assert_eq!(c.get("pid"), "7");
        assert_eq!(c.get("missing"), "");
        assert_eq!(r.files["a.pb.gz"], b"foo");
        assert!(!r.files.contains_key("b"));
        assert_eq!(r.errors.len(), 1);
        assert!(r.done);
    }
}
