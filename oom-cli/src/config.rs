//! The daemon's configuration file (`oomprof run --config FILE`, TOML): its schema
//! and reader. Every key is documented in `deploy/oomprof.toml`.
//!
//! The file only reads values; `cmd/run.rs` merges them under the flags (a flag wins)
//! and validates both the same way, so a bad value in the file gets the flag's message
//! with the file, line and key in place of the flag's name. An unknown key, a value
//! of the wrong type, or a TOML syntax error is one line naming the file and line.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A value from the file, and where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value; sizes and durations as the flag would take them (`512M`, `5m`).
    pub value: T,
    /// Its dotted key (`retention.max_files`).
    pub key: &'static str,
    /// Its line, from 1.
    pub line: usize,
}

impl<T> Setting<T> {
    /// What a message names it by, in the place of a flag: `FILE:LINE: key =`.
    pub fn label(&self, file: &Path) -> String {
        format!("{}:{}: {} =", file.display(), self.line, self.key)
    }
}

/// `[s3]`: delivery to S3-compatible object storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Section {
    /// Line of the `[s3]` header.
    pub line: usize,
    /// `endpoint`: `http(s)://HOST[:PORT]`.
    pub endpoint: Option<Setting<String>>,
    /// `bucket` (required).
    pub bucket: Option<Setting<String>>,
    /// `region`.
    pub region: Option<Setting<String>>,
    /// `prefix`.
    pub prefix: Option<Setting<String>>,
    /// `path_style`.
    pub path_style: Option<Setting<bool>>,
    /// `node`.
    pub node: Option<Setting<String>>,
    /// `keep_local`.
    pub keep_local: Option<Setting<bool>>,
    /// `access_key_id`.
    pub access_key_id: Option<Setting<String>>,
    /// `secret_access_key`.
    pub secret_access_key: Option<Setting<String>>,
    /// `session_token`.
    pub session_token: Option<Setting<String>>,
    /// `credentials_file`.
    pub credentials_file: Option<Setting<String>>,
    /// `timeout` (duration).
    pub timeout: Option<Setting<String>>,
    /// `ca_file`.
    pub ca_file: Option<Setting<String>>,
    /// `retry_max` (duration).
    pub retry_max: Option<Setting<String>>,
    /// `spool.max_files`.
    pub spool_max_files: Option<Setting<u64>>,
    /// `spool.max_bytes` (size).
    pub spool_max_bytes: Option<Setting<String>>,
}

/// What the file says; `None`: not given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// The file.
    pub path: PathBuf,
    /// `dir`.
    pub dir: Option<Setting<String>>,
    /// `events`.
    pub events: Option<Setting<String>>,
    /// `runtime_root`.
    pub runtime_root: Option<Setting<String>>,
    /// `ring_size` (size).
    pub ring_size: Option<Setting<String>>,
    /// `max_buckets`.
    pub max_buckets: Option<Setting<u64>>,
    /// `walk_budget` (duration).
    pub walk_budget: Option<Setting<String>>,
    /// `keep_all_kills`.
    pub keep_all_kills: Option<Setting<bool>>,
    /// `no_scan`.
    pub no_scan: Option<Setting<bool>>,
    /// `log_recent`.
    pub log_recent: Option<Setting<bool>>,
    /// `retention.max_files`.
    pub max_files: Option<Setting<u64>>,
    /// `retention.max_bytes` (size).
    pub max_bytes: Option<Setting<String>>,
    /// `retention.max_age` (duration).
    pub max_age: Option<Setting<String>>,
    /// `retention.debounce` (duration).
    pub debounce: Option<Setting<String>>,
    /// `metrics.addr`.
    pub metrics_addr: Option<Setting<String>>,
    /// `[s3]`, when present.
    pub s3: Option<S3Section>,
}

/// The kind of value a key takes.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// An integer, or a string with a unit (`512M`, `1G`).
    Size,
    /// A string with a unit (`5m`, `100ms`), or the integer 0.
    Duration,
}

/// Reads and checks `path`.
///
/// Returns an error naming the file (and line) if it cannot be read, is not TOML, has
/// a key this version does not know, or a value of the wrong type.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    parse(path, &text)
}

/// The line (from 1) of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .get(..at.min(text.len()))
        .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
        + 1
}

/// Parses the text of `path` (see [`load`]).
///
/// Returns an error as [`load`] does.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, String> {
    let file = path.display();
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        format!("{file}:{line}: not valid TOML: {msg}")
    })?;
    let mut c = FileConfig {
        path: path.to_path_buf(),
        ..FileConfig::default()
    };
    let r = Reader { text, file: path };
    for (k, v) in doc.get_ref() {
        let key: &str = k.get_ref();
        match key {
            "dir" => c.dir = r.str(v, "dir")?,
            "events" => c.events = r.str(v, "events")?,
            "runtime_root" => c.runtime_root = r.str(v, "runtime_root")?,
            "ring_size" => c.ring_size = r.text(v, "ring_size", Kind::Size)?,
            "max_buckets" => c.max_buckets = r.int(v, "max_buckets")?,
            "walk_budget" => c.walk_budget = r.text(v, "walk_budget", Kind::Duration)?,
            "keep_all_kills" => c.keep_all_kills = r.bool(v, "keep_all_kills")?,
            "no_scan" => c.no_scan = r.bool(v, "no_scan")?,
            "log_recent" => c.log_recent = r.bool(v, "log_recent")?,
            "retention" => {
                for (k, v) in r.table(v, "retention")? {
                    match k.get_ref().as_ref() {
                        "max_files" => c.max_files = r.int(v, "retention.max_files")?,
                        "max_bytes" => {
                            c.max_bytes = r.text(v, "retention.max_bytes", Kind::Size)?
                        }
                        "max_age" => c.max_age = r.text(v, "retention.max_age", Kind::Duration)?,
                        "debounce" => {
                            c.debounce = r.text(v, "retention.debounce", Kind::Duration)?
                        }
                        _ => return Err(r.unknown(k, "retention.")),
                    }
                }
            }
            "metrics" => {
                for (k, v) in r.table(v, "metrics")? {
                    match k.get_ref().as_ref() {
                        "addr" => c.metrics_addr = r.str(v, "metrics.addr")?,
                        _ => return Err(r.unknown(k, "metrics.")),
                    }
                }
            }
            "s3" => {
                let mut s = S3Section {
                    line: line_of(text, k.span().start),
                    ..S3Section::default()
                };
                for (k, v) in r.table(v, "s3")? {
                    match k.get_ref().as_ref() {
                        "endpoint" => s.endpoint = r.str(v, "s3.endpoint")?,
                        "bucket" => s.bucket = r.str(v, "s3.bucket")?,
                        "region" => s.region = r.str(v, "s3.region")?,
                        "prefix" => s.prefix = r.str(v, "s3.prefix")?,
                        "path_style" => s.path_style = r.bool(v, "s3.path_style")?,
                        "node" => s.node = r.str(v, "s3.node")?,
                        "keep_local" => s.keep_local = r.bool(v, "s3.keep_local")?,
                        "access_key_id" => s.access_key_id = r.str(v, "s3.access_key_id")?,
                        "secret_access_key" => {
                            s.secret_access_key = r.str(v, "s3.secret_access_key")?
                        }
                        "session_token" => s.session_token = r.str(v, "s3.session_token")?,
                        "credentials_file" => {
                            s.credentials_file = r.str(v, "s3.credentials_file")?
                        }
                        "timeout" => s.timeout = r.text(v, "s3.timeout", Kind::Duration)?,
                        "ca_file" => s.ca_file = r.str(v, "s3.ca_file")?,
                        "retry_max" => s.retry_max = r.text(v, "s3.retry_max", Kind::Duration)?,
                        "spool" => {
                            for (k, v) in r.table(v, "s3.spool")? {
                                match k.get_ref().as_ref() {
                                    "max_files" => {
                                        s.spool_max_files = r.int(v, "s3.spool.max_files")?
                                    }
                                    "max_bytes" => {
                                        s.spool_max_bytes =
                                            r.text(v, "s3.spool.max_bytes", Kind::Size)?
                                    }
                                    _ => return Err(r.unknown(k, "s3.spool.")),
                                }
                            }
                        }
                        _ => return Err(r.unknown(k, "s3.")),
                    }
                }
                c.s3 = Some(s);
            }
            _ => return Err(r.unknown(k, "")),
        }
    }
    Ok(c)
}

/// Reads values of one file, with its text for line numbers.
struct Reader<'a> {
    text: &'a str,
    file: &'a Path,
}

type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;

impl Reader<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn unknown(&self, k: &Key<'_>, parent: &str) -> String {
        format!(
            "{}:{}: unknown key `{parent}{}`",
            self.file.display(),
            self.line(k.span()),
            k.get_ref()
        )
    }

    fn wrong(&self, v: &Spanned<DeValue<'_>>, key: &str, want: &str) -> String {
        let got = match v.get_ref() {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a float",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a date",
            DeValue::Array(_) => "an array",
            DeValue::Table(_) => "a table",
        };
        format!(
            "{}:{}: {key}: want {want}, not {got}",
            self.file.display(),
            self.line(v.span())
        )
    }

    fn table<'v, 'i>(
        &self,
        v: &'v Spanned<DeValue<'i>>,
        key: &str,
    ) -> Result<&'v DeTable<'i>, String> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.wrong(v, key, &format!("a table ([{key}])"))),
        }
    }

    fn setting<T>(&self, v: &Spanned<DeValue<'_>>, key: &'static str, value: T) -> Setting<T> {
        Setting {
            value,
            key,
            line: self.line(v.span()),
        }
    }

    fn str(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &'static str,
    ) -> Result<Option<Setting<String>>, String> {
        self.text(v, key, Kind::Str)
    }

    /// A string, or for sizes and durations also an integer, as the flag's text.
    fn text(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &'static str,
        kind: Kind,
    ) -> Result<Option<Setting<String>>, String> {
        let s = match (v.get_ref(), kind) {
            (DeValue::String(s), Kind::Str | Kind::Size | Kind::Duration) => s.to_string(),
            (DeValue::Integer(i), Kind::Size) => self.integer(v, key, i)?.to_string(),
            (DeValue::Integer(i), Kind::Duration) if self.integer(v, key, i)? == 0 => {
                "0".to_string()
            }
            (_, Kind::Size) => return Err(self.wrong(v, key, "a size such as \"512M\"")),
            (_, Kind::Duration) => {
                return Err(self.wrong(v, key, "a duration such as \"5m\" or \"100ms\""))
            }
            _ => return Err(self.wrong(v, key, "a string")),
        };
        Ok(Some(self.setting(v, key, s)))
    }

    fn integer(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        i: &toml::de::DeInteger<'_>,
    ) -> Result<u64, String> {
        u64::from_str_radix(i.as_str(), i.radix()).map_err(|_| {
            format!(
                "{}:{}: {key}: want a non-negative integer, not {}",
                self.file.display(),
                self.line(v.span()),
                i.as_str()
            )
        })
    }

    fn int(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &'static str,
    ) -> Result<Option<Setting<u64>>, String> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let n = self.integer(v, key, i)?;
                Ok(Some(self.setting(v, key, n)))
            }
            _ => Err(self.wrong(v, key, "an integer")),
        }
    }

    fn bool(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &'static str,
    ) -> Result<Option<Setting<bool>>, String> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(self.setting(v, key, *b))),
            _ => Err(self.wrong(v, key, "true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<FileConfig, String> {
        parse(Path::new("/etc/oomprof.toml"), text)
    }

    #[test]
    fn the_deploy_example_parses_and_sets_every_key() {
        let text = include_str!("../../deploy/oomprof.toml");
        // Every key the example documents, uncommented.
        let full: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = p(&full).unwrap_or_else(|e| panic!("{e}\n{full}"));
        let s = c.s3.as_ref().expect("[s3]");
        for (name, set) in [
            ("dir", c.dir.is_some()),
            ("events", c.events.is_some()),
            ("runtime_root", c.runtime_root.is_some()),
            ("ring_size", c.ring_size.is_some()),
            ("max_buckets", c.max_buckets.is_some()),
            ("walk_budget", c.walk_budget.is_some()),
            ("keep_all_kills", c.keep_all_kills.is_some()),
            ("no_scan", c.no_scan.is_some()),
            ("log_recent", c.log_recent.is_some()),
            ("retention.max_files", c.max_files.is_some()),
            ("retention.max_bytes", c.max_bytes.is_some()),
            ("retention.max_age", c.max_age.is_some()),
            ("retention.debounce", c.debounce.is_some()),
            ("metrics.addr", c.metrics_addr.is_some()),
            ("s3.endpoint", s.endpoint.is_some()),
            ("s3.bucket", s.bucket.is_some()),
            ("s3.region", s.region.is_some()),
            ("s3.prefix", s.prefix.is_some()),
            ("s3.path_style", s.path_style.is_some()),
            ("s3.node", s.node.is_some()),
            ("s3.keep_local", s.keep_local.is_some()),
            ("s3.access_key_id", s.access_key_id.is_some()),
            ("s3.secret_access_key", s.secret_access_key.is_some()),
            ("s3.session_token", s.session_token.is_some()),
            ("s3.credentials_file", s.credentials_file.is_some()),
            ("s3.timeout", s.timeout.is_some()),
            ("s3.ca_file", s.ca_file.is_some()),
            ("s3.retry_max", s.retry_max.is_some()),
            ("s3.spool.max_files", s.spool_max_files.is_some()),
            ("s3.spool.max_bytes", s.spool_max_bytes.is_some()),
        ] {
            assert!(set, "deploy/oomprof.toml does not document {name}");
        }
        // As shipped (comments only where the example says so) it parses too.
        p(text).unwrap();
    }

    #[test]
    fn values_keep_their_key_and_line() {
        let c = p("dir = \"/var/lib/oomprof\"\n\n[retention]\nmax_files = 100\nmax_bytes = 1073741824\nmax_age = \"7d\"\nmax_age_ = 1\n")
            .unwrap_err();
        assert_eq!(c, "/etc/oomprof.toml:7: unknown key `retention.max_age_`");
        let c = p("dir = \"/d\"\n[retention]\nmax_files = 100\nmax_bytes = 1073741824\n").unwrap();
        assert_eq!(c.dir.as_ref().unwrap().value, "/d");
        let m = c.max_files.unwrap();
        assert_eq!((m.value, m.key, m.line), (100, "retention.max_files", 3));
        assert_eq!(
            m.label(&c.path),
            "/etc/oomprof.toml:3: retention.max_files ="
        );
        assert_eq!(c.max_bytes.unwrap().value, "1073741824");
        let c = p("walk_budget = 0\nring_size = \"8M\"\n[s3]\nbucket = \"b\"\n[s3.spool]\nmax_files = 5\n").unwrap();
        assert_eq!(c.walk_budget.unwrap().value, "0");
        let s = c.s3.unwrap();
        assert_eq!(s.line, 3);
        assert_eq!(s.spool_max_files.unwrap().value, 5);
    }

    #[test]
    fn every_error_is_one_line_naming_the_file_and_line() {
        for (text, want) in [
            ("bucket = \"b\"\n", "/etc/oomprof.toml:1: unknown key `bucket`"),
            ("[s3]\nbuckets = \"b\"\n", "/etc/oomprof.toml:2: unknown key `s3.buckets`"),
            ("[metrics]\nport = 1\n", "/etc/oomprof.toml:2: unknown key `metrics.port`"),
            ("[s3.spool]\nfiles = 1\n", "/etc/oomprof.toml:2: unknown key `s3.spool.files`"),
            ("[s3]\nspool = 3\n", "/etc/oomprof.toml:2: s3.spool: want a table ([s3.spool]), not an integer"),
            ("metrics = \"127.0.0.1:1\"\n", "/etc/oomprof.toml:1: metrics: want a table ([metrics]), not a string"),
            ("dir = 3\n", "/etc/oomprof.toml:1: dir: want a string, not an integer"),
            ("no_scan = \"yes\"\n", "/etc/oomprof.toml:1: no_scan: want true or false, not a string"),
            ("max_buckets = \"10\"\n", "/etc/oomprof.toml:1: max_buckets: want an integer, not a string"),
            ("max_buckets = -1\n", "/etc/oomprof.toml:1: max_buckets: want a non-negative integer, not -1"),
            ("[retention]\nmax_age = 7\n", "/etc/oomprof.toml:2: retention.max_age: want a duration such as \"5m\" or \"100ms\", not an integer"),
            ("ring_size = 1.5\n", "/etc/oomprof.toml:1: ring_size: want a size such as \"512M\", not a float"),
            ("[s3]\nkeep_local = 1\n", "/etc/oomprof.toml:2: s3.keep_local: want true or false, not an integer"),
        ] {
            assert_eq!(p(text).unwrap_err(), want, "{text}");
        }
        let e = p("dir = \"x\"\n[retention\n").unwrap_err();
        assert!(
            e.starts_with("/etc/oomprof.toml:2: not valid TOML: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = p("dir = \"a\"\ndir = \"b\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/oomprof.toml:2: not valid TOML: "),
            "{e}"
        );
        let e = load(Path::new("/nonexistent/oomprof.toml")).unwrap_err();
        assert!(
            e.starts_with("config file /nonexistent/oomprof.toml: "),
            "{e}"
        );
    }
}
