//! Map creation from the object's definitions, data-section upload, and the
//! kernel-memory figure (`memlock` in fdinfo, the kernel's `bpf_map_memory_usage`).

use std::os::fd::{AsFd, AsRawFd};

use aya_obj::maps::Map;
use aya_obj::EbpfSectionKind;

use crate::error::{Error, Result};
use crate::sys::{self, consts, MapFd, MapSpec};

/// `BPF_F_RDONLY_PROG`, set by aya-obj on `.rodata`.
const BPF_F_RDONLY_PROG: u32 = 0x80;

/// Map names as bpftool shows them: prefixed so that our objects are recognisable.
pub fn kernel_name(name: &str) -> String {
    let n = name.trim_start_matches('.');
    let mut s = format!("oomprof_{n}");
    s.truncate(15);
    s
}

/// Creates the map `name` from its object definition, uploads section data, and
/// freezes `.rodata`.
///
/// Returns an error if BPF_MAP_CREATE, the upload or the freeze fails.
pub fn create(name: &str, map: &Map, btf: Option<&std::os::fd::OwnedFd>) -> Result<MapFd> {
    let map_type = map.map_type();
    // These map types refuse BTF key/value ids.
    let takes_btf = !matches!(
        map_type,
        consts::MAP_TYPE_RINGBUF | consts::MAP_TYPE_PERF_EVENT_ARRAY | consts::MAP_TYPE_PROG_ARRAY
    );
    let btf_ids = match map {
        Map::Btf(m) => Some((m.def.btf_key_type_id, m.def.btf_value_type_id)),
        Map::Legacy(_) => None,
    };
    let kname = kernel_name(name);
    let spec = MapSpec {
        map_type,
        key_size: map.key_size(),
        value_size: map.value_size(),
        max_entries: map.max_entries(),
        flags: map.map_flags(),
        name: &kname,
        btf: match (btf, btf_ids, takes_btf) {
            (Some(fd), Some((k, v)), true) if k != 0 || v != 0 => Some((fd.as_fd(), k, v)),
            _ => None,
        },
    };
    let fd = sys::map_create(&spec).map_err(|e| {
        Error::sys(
            format!(
                "BPF_MAP_CREATE {name} (type {map_type}, {} entries)",
                spec.max_entries
            ),
            e,
        )
    })?;
    let data = map.data();
    if !data.is_empty()
        && matches!(
            map.section_kind(),
            EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
        )
    {
        sys::map_update(&fd, &0u32.to_ne_bytes(), data, 0)
            .map_err(|e| Error::sys(format!("BPF_MAP_UPDATE_ELEM {name} (section data)"), e))?;
        if map.map_flags() & BPF_F_RDONLY_PROG != 0 {
            sys::map_freeze(&fd).map_err(|e| Error::sys(format!("BPF_MAP_FREEZE {name}"), e))?;
        }
    }
    Ok(fd)
}

/// A numeric field of /proc/self/fdinfo/`fd` (`memlock`, `map_id`, `prog_id`).
///
/// Returns an error if fdinfo cannot be read or lacks the field.
pub fn fdinfo_field(fd: &impl AsRawFd, field: &str) -> Result<u64> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::sys(format!("reading {path}"), e))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::sys(
                format!("parsing {field} in {path}"),
                std::io::ErrorKind::InvalidData.into(),
            )
        })
}

/// Kernel memory charged for `fd` (`memlock:` in /proc/self/fdinfo, the kernel's
/// `bpf_map_memory_usage`).
///
/// Returns an error if fdinfo cannot be read or lacks the line.
pub fn memlock_bytes(fd: &impl AsRawFd) -> Result<u64> {
    fdinfo_field(fd, "memlock")
}
