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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pclntab::testdata;

    #[test]
    fn amd64_rip_relative_mov() {
        // 48 8b 0d 10 00 00 00   MOVQ 0x10(RIP), CX   at 0x1000 → 0x1007 + 0x10
        assert_eq!(
            amd64_rip_mov(&[0x48, 0x8b, 0x0d, 0x10, 0, 0, 0], 0x1000),
            Some(0x1017)
        );
        // 4c 8b 05 f0 ff ff ff   MOVQ -0x10(RIP), R8
        assert_eq!(
            amd64_rip_mov(&[0x4c, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff], 0x1000),
            Some(0xff7)
        );
        // 48 8b 4e 10            MOVQ 0x10(SI), CX: not RIP-relative
        assert_eq!(
            amd64_rip_mov(&[0x48, 0x8b, 0x4e, 0x10, 0, 0, 0], 0x1000),
            None
        );
        assert_eq!(amd64_rip_mov(&[0x48, 0x8b, 0x0d, 0x10], 0x1000), None); // truncated
    }

    #[test]
    fn nth_load_skips_out_of_range_targets() {
        #[rustfmt::skip]
        let code = [
            0x49, 0x3b, 0x66, 0x10,                   // CMPQ SP, 16(R14)
            0x48, 0x8b, 0x05, 0x00, 0x10, 0x00, 0x00, // MOVQ 0x1000(RIP), AX → 0x200b (outside)
            0x48, 0x8b, 0x15, 0x00, 0x20, 0x00, 0x00, // MOVQ 0x2000(RIP), DX → 0x3012
            0x48, 0x8b, 0x1d, 0x00, 0x30, 0x00, 0x00, // MOVQ 0x3000(RIP), BX → 0x4019
        ];
        let valid = 0x3000..0x5000;
        assert_eq!(
            nth_global_load((0x1000, &code), Arch::Amd64, 0, &valid),
            Some(0x3012)
        );
        assert_eq!(
            nth_global_load((0x1000, &code), Arch::Amd64, 1, &valid),
            Some(0x4019)
        );
        assert_eq!(
            nth_global_load((0x1000, &code), Arch::Amd64, 2, &valid),
            None
        );
    }

    fn w(words: &[u32]) -> std::vec::Vec<u8> {
        words.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn arm64_adrp_add_ldar_and_ldr() {
        // Go 1.27 mProf_FlushLocked: ADRP R1, +0x1d8000 page; ADD $0x2a0, R1; LDAR (R1), R2.
        // ADRP: op 1, immlo 01, 10010000, immhi, Rd=1. Page delta 0x1d8 pages = imm 0x1d8.
        let imm: u32 = 0x1d8;
        let adrp = 0x9000_0000 | ((imm & 3) << 29) | ((imm >> 2) << 5) | 1;
        let add = 0x9100_0000 | (0x2a0 << 10) | (1 << 5) | 1; // ADD X1, X1, #0x2a0
        let ldar = 0xc8df_fc00 | (1 << 5) | 2; // LDAR X2, [X1]
        let code = w(&[0xd503_201f, adrp, add, ldar]); // NOP first
        let want = (0x10004 & !0xfff) + (0x1d8 << 12) + 0x2a0;
        assert_eq!(
            nth_global_load((0x10000, &code), Arch::Arm64, 0, &(0..u64::MAX)),
            Some(want)
        );
        // Go 1.19 MOVD: ADRP; ADD; LDR X3, [X27, #0].
        let adrp27 = (adrp & !0x1f) | 27;
        let add27 = 0x9100_0000 | (0xf80 << 10) | (27 << 5) | 27;
        let ldr = 0xf940_0000 | (27 << 5) | 3;
        let code = w(&[adrp27, add27, ldr]);
        assert_eq!(
            nth_global_load((0x10000, &code), Arch::Arm64, 0, &(0..u64::MAX)),
            Some(0x10000 + (0x1d8 << 12) + 0xf80)
        );
        // Go 1.27 MOVD: ADRP; LDR X3, [X27, #896] (imm12 = 112).
        let ldr = 0xf940_0000 | (112 << 10) | (27 << 5) | 3;
        let code = w(&[adrp27, ldr]);
        assert_eq!(
            nth_global_load((0x10000, &code), Arch::Arm64, 0, &(0..u64::MAX)),
            Some(0x10000 + (0x1d8 << 12) + 896)
        );
        // A negative page offset (immhi sign bit) and an ADRP without a matching load.
        let neg = 0x9000_0000 | (0x7_ffff << 5) | (3 << 29) | 1; // imm = -1 page
        assert_eq!(
            arm64_global(neg, Some(add), Some(ldar), 0x10000),
            Some(0xf000 + 0x2a0)
        );
        assert_eq!(arm64_global(adrp, Some(0xd503_201f), None, 0x10000), None);
        assert_eq!(
            arm64_global(adrp, Some(add), Some(0xd503_201f), 0x10000),
            None
        );
        assert_eq!(
            arm64_global(0xd503_201f, Some(add), Some(ldar), 0x10000),
            None
        );
    }

    #[test]
    fn missing_function_and_code_range() {
        let (t, _) = testdata::tables();
        let tab = Pclntab::parse(&t).unwrap();
        let code = Code {
            addr: 0x1000,
            bytes: &[0u8; 0x80],
        };
        assert_eq!(
            find_mbuckets(&tab, 0x1000, code, Arch::Amd64, 0..u64::MAX),
            Err(Error::NotFound {
                what: "runtime.mProf_FlushLocked"
            })
        );
        assert_eq!(
            find_mem_profile_rate(&tab, 0x1000, code, Arch::Amd64, 0..u64::MAX),
            Err(Error::NotFound {
                what: "runtime.profilealloc"
            })
        );
        // runtime.malg exists: its code [0x1040, 0x1080) must lie inside `code`.
        assert!(function_code(&tab, 0x1000, code, "runtime.malg").is_ok());
        let short = Code {
            addr: 0x1000,
            bytes: &[0u8; 0x50],
        };
        assert!(matches!(
            function_code(&tab, 0x1000, short, "runtime.malg"),
            Err(Error::Invalid {
                field: "function range",
                ..
            })
        ));
        let before = Code {
            addr: 0x2000,
            bytes: &[0u8; 0x80],
        };
        assert!(function_code(&tab, 0x1000, before, "runtime.malg").is_err());
    }
}
