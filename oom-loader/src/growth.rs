//! The growth sampler: page faults sampled one in N on every CPU, each with its user
//! stack, counted per (process, stack) in the kernel.
//!
//! ```text
//! growth.bpf.o ──aya-obj──▶ maps (growth, growth_scratch, .rodata, .bss) + growth_sample
//! perf_event_open(SOFTWARE, PAGE_FAULTS, period N) per online CPU ──▶ BPF link or SET_BPF
//! Sampler::drain() ──GET_NEXT_KEY + LOOKUP_AND_DELETE──▶ oom_core::abi::GrowthEntry
//!     ──▶ growth_profile.rs (symbolize, pprof)
//! ```
//!
//! A page fault is the first touch of a page: the sampled stacks say which code made
//! the resident memory grow, in any language, without hooks in the allocator. Memory
//! an allocator reuses does not fault again and is not seen again.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use aya_obj::btf::BtfFeatures;
use aya_obj::maps::Map;
use aya_obj::Object;
use oom_core::abi::{self, GrowthCounters, GrowthEntry};

use crate::attach::Attachment;
use crate::error::{Error, Result};
use crate::kernel::{load_program, ProgKind};
use crate::maps;
use crate::sys::{self, consts, MapFd};

/// Longest accepted sample period (faults per sample).
pub const MAX_PERIOD: u64 = 1 << 24;
/// Most entries the `growth` map may be given (each preallocates about 1.1 KB).
pub const MAX_STACKS: u32 = 1 << 20;

/// What the sampler samples, and how much it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthConfig {
    /// One sample per this many page faults (on each CPU).
    pub period: u64,
    /// Entries of the kernel's (process, stack) map.
    pub max_stacks: u32,
    /// Sample only this process; 0 samples every process.
    pub tgid: u32,
    /// Attach through `PERF_EVENT_IOC_SET_BPF` even where BPF links exist.
    pub ioctl_attach: bool,
}

impl Default for GrowthConfig {
    fn default() -> Self {
        Self {
            period: abi::GROWTH_DEFAULT_PERIOD,
            max_stacks: abi::GROWTH_DEFAULT_ENTRIES,
            tgid: 0,
            ioctl_attach: false,
        }
    }
}

/// The running sampler. Dropping it detaches the program from every CPU and frees
/// the maps.
#[derive(Debug)]
pub struct Sampler {
    // Declared first: dropped (detached) before the maps.
    _attachments: Vec<Attachment>,
    map: MapFd,
    bss: MapFd,
    _other_maps: Vec<MapFd>,
    _btf: Option<OwnedFd>,
    config: GrowthConfig,
    cpus: usize,
    memlock: u64,
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
///
/// Returns `None` if a part does not parse.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 65536 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

fn object_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Object(format!("growth object: {what}: {e}"))
}

impl Sampler {
    /// Loads the growth program and attaches it to a page-fault event on every online
    /// CPU.
    ///
    /// Returns an error if the configuration is out of range, the program fails
    /// verification (with the log), or no CPU's event can be opened and attached.
    pub fn start(config: &GrowthConfig) -> Result<Sampler> {
        if config.period == 0 || config.period > MAX_PERIOD {
            return Err(Error::Config(format!(
                "growth sample period {} must be 1..={MAX_PERIOD} faults",
                config.period
            )));
        }
        if config.max_stacks == 0 || config.max_stacks > MAX_STACKS {
            return Err(Error::Config(format!(
                "growth map size {} must be 1..={MAX_STACKS} stacks",
                config.max_stacks
            )));
        }
        let bytes = oom_bpf::growth_object();
        let mut obj = Object::parse(bytes).map_err(|e| object_err("parse", e))?;
        let cfg = abi::encode_growth_config(config.tgid);
        obj.patch_map_data(HashMap::from([(
            oom_bpf::growth::CONFIG_VAR,
            (&cfg[..], true),
        )]))
        .map_err(|e| object_err("patching growth_cfg", e))?;
        let btf_features = BtfFeatures::new(true, true, true, false, false, false, false, false);
        let btf = match obj.fixup_and_sanitize_btf(&btf_features) {
            Ok(Some(btf)) => match sys::btf_load(&btf.to_bytes(), None) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    log::warn!(
                        "BPF_BTF_LOAD of the growth object failed ({e}); loading without BTF"
                    );
                    None
                }
            },
            Ok(None) => None,
            Err(e) => return Err(object_err("BTF fixup", e)),
        };
        let mut defs: Vec<(String, Map)> = obj.maps.drain().collect();
        defs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut created: Vec<(String, MapFd)> = Vec::new();
        for (name, def) in &mut defs {
            if name == oom_bpf::growth::MAP {
                def.set_max_entries(config.max_stacks);
            }
            let fd = maps::create(name, def, btf.as_ref())?;
            created.push((name.clone(), fd));
        }
        crate::kernel::relocate(&mut obj, &defs, &created).map_err(|e| match e {
            Error::Object(m) => object_err("relocation", m),
            e => e,
        })?;
        let elf = object::File::parse(bytes).map_err(|e| object_err("ELF", e))?;
        let prog = load_program(
            &obj,
            &elf,
            btf.as_ref(),
            oom_bpf::growth::PROGRAM,
            ProgKind {
                prog_type: consts::PROG_TYPE_PERF_EVENT,
                section: "perf_event".into(),
            },
        )?;

        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .map_err(|e| Error::sys("reading /sys/devices/system/cpu/online", e))?;
        let cpus = parse_cpu_list(&online).ok_or_else(|| {
            Error::sys(
                format!(
                    "parsing /sys/devices/system/cpu/online ({:?})",
                    online.trim()
                ),
                std::io::ErrorKind::InvalidData.into(),
            )
        })?;
        let use_link = !config.ioctl_attach && crate::probe::perf_link();
        let mut attachments = Vec::new();
        for &cpu in &cpus {
            let perf = match sys::perf_event_open_software(
                consts::PERF_COUNT_SW_PAGE_FAULTS,
                config.period,
                cpu,
            ) {
                Ok(p) => p,
                // Went offline since we read the list.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => continue,
                Err(e) => {
                    return Err(Error::sys(
                        format!("perf_event_open(page faults, cpu {cpu})"),
                        e,
                    ))
                }
            };
            let mut linked = None;
            if use_link {
                match sys::link_create_perf_event(&prog, &perf) {
                    Ok(link) => linked = Some(link),
                    Err(e) => log::debug!("BPF_LINK_CREATE on cpu {cpu} failed ({e}); using ioctl"),
                }
            }
            attachments.push(match linked {
                Some(link) => Attachment::Link { link, perf },
                None => {
                    sys::perf_attach_ioctl(&perf, &prog).map_err(|e| {
                        Error::sys(
                            format!("PERF_EVENT_IOC_SET_BPF (page faults, cpu {cpu})"),
                            e,
                        )
                    })?;
                    Attachment::Ioctl { perf }
                }
            });
        }
        if attachments.is_empty() {
            return Err(Error::Config(format!(
                "no online CPU in {:?} accepted a page-fault event",
                online.trim()
            )));
        }
        let mut memlock = 0;
        let mut map = None;
        let mut bss = None;
        let mut other = Vec::new();
        for (name, fd) in created {
            memlock += maps::memlock_bytes(&fd)?;
            match name.as_str() {
                n if n == oom_bpf::growth::MAP => map = Some(fd),
                ".bss" => bss = Some(fd),
                _ => other.push(fd),
            }
        }
        let n = attachments.len();
        Ok(Sampler {
            _attachments: attachments,
            map: map.ok_or_else(|| object_err("maps", "no growth map"))?,
            bss: bss.ok_or_else(|| object_err("maps", "no .bss map"))?,
            _other_maps: other,
            _btf: btf,
            config: *config,
            cpus: n,
            memlock,
        })
    }

    /// Reads and deletes every entry of the kernel map (the kernel keeps counting
    /// into fresh entries meanwhile).
    ///
    /// Returns an error if the map cannot be read; an entry that does not parse is
    /// an error too (it would mean the ABI is out of step).
    pub fn drain(&self) -> Result<Vec<GrowthEntry>> {
        let ksize = self.map.key_size() as usize;
        let mut keys = Vec::new();
        let mut next = vec![0u8; ksize];
        let mut prev: Option<Vec<u8>> = None;
        // A hash map's key order changes under deletion: collect first, then take.
        while sys::map_next_key(&self.map, prev.as_deref(), &mut next)
            .map_err(|e| Error::sys("BPF_MAP_GET_NEXT_KEY growth", e))?
        {
            keys.push(next.clone());
            prev = Some(next.clone());
            if keys.len() > MAX_STACKS as usize {
                break;
            }
        }
        let mut value = vec![0u8; self.map.value_size_total() as usize];
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match sys::map_lookup_and_delete(&self.map, &key, &mut value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                // Before 5.14 hash maps lack the combined command.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL) | Some(libc::ENOTSUP) | Some(524)
                    ) =>
                {
                    match sys::map_lookup(&self.map, &key, &mut value) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) => return Err(Error::sys("BPF_MAP_LOOKUP_ELEM growth", e)),
                    }
                    let _ = sys::map_delete(&self.map, &key);
                }
                Err(e) => return Err(Error::sys("BPF_MAP_LOOKUP_AND_DELETE_ELEM growth", e)),
            }
            out.push(GrowthEntry::parse(&key, &value)?);
        }
        Ok(out)
    }

    /// The kernel's counters (samples, stacks, drops).
    ///
    /// Returns an error if `.bss` cannot be read.
    pub fn counters(&self) -> Result<GrowthCounters> {
        let mut v = vec![0u8; self.bss.value_size_total() as usize];
        sys::map_lookup(&self.bss, &0u32.to_ne_bytes(), &mut v)
            .map_err(|e| Error::sys("BPF_MAP_LOOKUP_ELEM growth .bss", e))?;
        // growth_counters is the only .bss variable, at offset 0.
        Ok(GrowthCounters::parse(&v)?)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &GrowthConfig {
        &self.config
    }

    /// CPUs the program is attached on.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Kernel memory charged for the maps (`memlock` in fdinfo).
    pub fn kernel_memory(&self) -> u64 {
        self.memlock
    }
}

/// Entries drained over time, merged per (process, stack): draining the kernel map
/// often keeps it from filling up, and this sums what each drain returned.
#[derive(Debug, Default)]
pub struct Accumulator {
    stacks: HashMap<(u32, Vec<u64>), GrowthEntry>,
}

impl Accumulator {
    /// Adds drained entries: samples add up, first/last times widen.
    pub fn add(&mut self, entries: impl IntoIterator<Item = GrowthEntry>) {
        for e in entries {
            match self.stacks.entry((e.tgid, e.stack().to_vec())) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let a = o.get_mut();
                    a.samples = a.samples.saturating_add(e.samples);
                    a.first_ns = a.first_ns.min(e.first_ns);
                    a.last_ns = a.last_ns.max(e.last_ns);
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(e);
                }
            }
        }
    }

    /// The merged entries of `tgid`, most samples first.
    pub fn of(&self, tgid: u32) -> Vec<GrowthEntry> {
        let mut v: Vec<GrowthEntry> = self
            .stacks
            .iter()
            .filter(|((t, _), _)| *t == tgid)
            .map(|(_, e)| *e)
            .collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.pcs.cmp(&b.pcs)));
        v
    }
}

/// Checks that growth sampling works here: loads the program with a one-entry map
/// and attaches it, then detaches it.
///
/// Returns the error that keeps it from working.
pub fn probe() -> Result<()> {
    Sampler::start(&GrowthConfig {
        max_stacks: 1,
        // Only our own faults (none meanwhile) would be counted.
        tgid: std::process::id(),
        ..GrowthConfig::default()
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tgid: u32, samples: u64, first: u64, last: u64, stack: &[u64]) -> GrowthEntry {
        let mut pcs = [0u64; abi::GROWTH_MAX_DEPTH];
        pcs[..stack.len()].copy_from_slice(stack);
        GrowthEntry {
            tgid,
            samples,
            first_ns: first,
            last_ns: last,
            depth: stack.len(),
            pcs,
        }
    }

    #[test]
    fn drains_merge_per_process_and_stack() {
        let mut a = Accumulator::default();
        a.add([entry(7, 2, 10, 20, &[1, 2]), entry(7, 1, 5, 5, &[1])]);
        a.add([
            entry(7, 3, 30, 40, &[1, 2]),
            entry(8, 9, 1, 1, &[1, 2]),
            entry(7, u64::MAX, 1, 1, &[1]),
        ]);
        let got: Vec<_> = a
            .of(7)
            .iter()
            .map(|e| (e.stack().to_vec(), e.samples, e.first_ns, e.last_ns))
            .collect();
        assert_eq!(got, [(vec![1], u64::MAX, 1, 5), (vec![1, 2], 5, 10, 40)]);
        assert_eq!(a.of(8).len(), 1);
        assert!(a.of(9).is_empty());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn bad_configs_are_errors() {
        for c in [
            GrowthConfig {
                period: 0,
                ..Default::default()
            },
            GrowthConfig {
                max_stacks: 0,
                ..Default::default()
            },
            GrowthConfig {
                max_stacks: MAX_STACKS + 1,
                ..Default::default()
            },
        ] {
            assert!(matches!(Sampler::start(&c), Err(Error::Config(_))), "{c:?}");
        }
    }
}
