//! Finding `runtime.mbuckets` and `runtime.MemProfileRate` without `.symtab`, by decoding
//! the code that loads them (go-runtime.md §4.2, §5.2; Go 1.19–1.27):
//!
//! - `runtime.mbuckets`: the first global load in `runtime.mProf_FlushLocked`
//!   (`head := mbuckets.Load()`): amd64 `MOVQ disp32(RIP), reg`; arm64
//!   `ADRP Xn; ADD Xn, Xn, #lo12; LDAR Xt, [Xn]`.
//! - `runtime.MemProfileRate`: the second global load in `runtime.profilealloc` (the
//!   first loads `runtime.mcache0`). Verified on amd64; on arm64 the same rule is
//!   applied to `ADRP`+`LDR`/`ADD` loads and only cross-checked statically.
//!
//! Both functions are found by name through gopclntab. All addresses are link-time
//! addresses of the file: add the load bias for a PIE process.

use crate::pclntab::Pclntab;
use crate::Error;

/// Instruction set of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// AArch64.
    Arm64,
}

/// The executable code: a text section's bytes and its link-time address.
#[derive(Clone, Copy, Debug)]
pub struct Code<'a> {
    /// Link-time address of `bytes[0]`.
    pub addr: u64,
    /// The section contents.
    pub bytes: &'a [u8],
}

/// Link-time address of `runtime.mbuckets`.
///
/// `text` is the text base of the pclntab ([`crate::pclntab::ModuleData::text`]);
/// `valid` is the address range the variable must lie in (e.g. `.bss`, or the whole
/// writable segment), used to reject false matches.
///
/// Returns an error if the function is missing or its code is not in `code`, or no
/// matching load is found.
pub fn find_mbuckets(
    tab: &Pclntab<'_>,
    text: u64,
    code: Code<'_>,
    arch: Arch,
    valid: core::ops::Range<u64>,
) -> Result<u64, Error> {
    let body = function_code(tab, text, code, "runtime.mProf_FlushLocked")?;
    nth_global_load(body, arch, 0, &valid).ok_or(Error::NotFound {
        what: "mbuckets load in runtime.mProf_FlushLocked",
    })
}

/// Link-time address of `runtime.MemProfileRate`; arguments as for [`find_mbuckets`]
/// (`valid` should cover `.noptrdata` and `.noptrbss`).
///
/// Returns an error if the function is missing or no second global load is found.
pub fn find_mem_profile_rate(
    tab: &Pclntab<'_>,
    text: u64,
    code: Code<'_>,
    arch: Arch,
    valid: core::ops::Range<u64>,
) -> Result<u64, Error> {
    let body = function_code(tab, text, code, "runtime.profilealloc")?;
    nth_global_load(body, arch, 1, &valid).ok_or(Error::NotFound {
        what: "MemProfileRate load in runtime.profilealloc",
    })
}

/// The code of function `name` as (link address, bytes).
fn function_code<'c>(
    tab: &Pclntab<'_>,
    text: u64,
    code: Code<'c>,
    name: &'static str,
) -> Result<(u64, &'c [u8]), Error> {
    let f = tab
        .func_by_name(name)?
        .ok_or(Error::NotFound { what: name })?;
    let entry = text
        .checked_add(u64::from(f.entry_off))
        .ok_or(Error::NotFound { what: name })?;
    let len = u64::from(f.end_off.saturating_sub(f.entry_off));
    let start = entry
        .checked_sub(code.addr)
        .and_then(|s| usize::try_from(s).ok());
    let bytes = start
        .and_then(|s| Some((s, s.checked_add(usize::try_from(len).ok()?)?)))
        .and_then(|(s, e)| code.bytes.get(s..e))
        .ok_or(Error::Invalid {
            structure: "code",
            field: "function range",
            offset: 0,
            value: entry,
        })?;
    Ok((entry, bytes))
}

/// The target of the `n`th (0-based) global load in `body` whose target is in `valid`.
fn nth_global_load(
    (addr, body): (u64, &[u8]),
    arch: Arch,
    n: usize,
    valid: &core::ops::Range<u64>,
) -> Option<u64> {
    let mut seen = 0usize;
    let mut hit = |t: u64| -> Option<u64> {
        if valid.contains(&t) {
            if seen == n {
                return Some(t);
            }
            seen += 1;
        }
        None
    };
    match arch {
        Arch::Amd64 => {
            for i in 0..body.len() {
                if let Some(t) = amd64_rip_mov(body.get(i..)?, addr.wrapping_add(i as u64)) {
                    if let Some(t) = hit(t) {
                        return Some(t);
                    }
                }
            }
            None
        }
        Arch::Arm64 => {
            let words = body.len() / 4;
            let word = |i: usize| crate::read::le32(body, i * 4);
            for i in 0..words {
                let pc = addr.wrapping_add(4 * i as u64);
                if let Some(t) = arm64_global(word(i)?, word(i + 1), word(i + 2), pc) {
                    if let Some(t) = hit(t) {
                        return Some(t);
                    }
                }
            }
            None
        }
    }
}

/// `REX.W 8B /r` with mod=00, rm=101: `MOV r64, [RIP + disp32]`; returns its target.
fn amd64_rip_mov(b: &[u8], pc: u64) -> Option<u64> {
    let (&rex, &op, &modrm) = (b.first()?, b.get(1)?, b.get(2)?);
    if !(rex == 0x48 || rex == 0x4c) || op != 0x8b || modrm & 0xc7 != 0x05 {
        return None;
    }
    let disp = i32::from_le_bytes([*b.get(3)?, *b.get(4)?, *b.get(5)?, *b.get(6)?]);
    Some(pc.wrapping_add(7).wrapping_add(i64::from(disp) as u64))
}

/// `ADRP Xn` followed by `ADD Xn, Xn, #imm` and `LDAR Xt, [Xn]` / `LDR Xt, [Xn, #imm]`
/// (Go 1.19 `MOVD` of a global), or directly by `LDR Xt, [Xn, #imm]` (Go 1.27).
fn arm64_global(adrp: u32, next: Option<u32>, third: Option<u32>, pc: u64) -> Option<u64> {
    if adrp & 0x9f00_0000 != 0x9000_0000 {
        return None;
    }
    let rd = adrp & 0x1f;
    let immlo = u64::from((adrp >> 29) & 0x3);
    let immhi = u64::from((adrp >> 5) & 0x7_ffff);
    let imm = (immhi << 2) | immlo; // 21 bits, signed
    let simm = ((imm << 43) as i64) >> 43;
    let page = (pc & !0xfff).wrapping_add((simm << 12) as u64);
    let next = next?;
    if next & 0xffc0_0000 == 0x9100_0000 && (next >> 5) & 0x1f == rd && next & 0x1f == rd {
        // ADD Xn, Xn, #imm12 (no shift), then LDAR Xt, [Xn] or LDR Xt, [Xn, #imm].
        let at = page.wrapping_add(u64::from((next >> 10) & 0xfff));
        let load = third?;
        if load & 0xffff_fc00 == 0xc8df_fc00 && (load >> 5) & 0x1f == rd {
            return Some(at);
        }
        if load & 0xffc0_0000 == 0xf940_0000 && (load >> 5) & 0x1f == rd {
            return Some(at.wrapping_add(u64::from((load >> 10) & 0xfff) * 8));
        }
        return None;
    }
    if next & 0xffc0_0000 == 0xf940_0000 && (next >> 5) & 0x1f == rd {
        // LDR Xt, [Xn, #imm12 * 8].
        return Some(page.wrapping_add(u64::from((next >> 10) & 0xfff) * 8));
    }
    None
}
