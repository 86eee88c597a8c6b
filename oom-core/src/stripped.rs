//! Finding `runtime.mbuckets` and `runtime.MemProfileRate` without `.symtab`, by decoding
//! the code that loads them (go-runtime.md §4.2, §5.2; Go 1.19–1.27):
//!
//! - `runtime.mbuckets`: the first global load in `runtime.mProf_FlushLocked`
//!   (`head := mbuckets.Load()`): amd64 `MOVQ disp32(RIP), reg`; arm64
//!   `ADRP Xn; ADD Xn, Xn, #lo12; LDAR Xt, [Xn]`.
//! - `runtime.MemProfileRate`: the second global load in `runtime.profilealloc` (the
//!   first loads `runtime.mcache0`). Verified on amd64; on arm64 the same rule is
//!   applied to `ADRP`+`LDR`/`ADD` loads and only cross-checked statically.
//! - `runtime.mProfCycle` (4 bytes): in `runtime.mProf_Flush`, the inlined
//!   `mProfCycle.setFlushed()` loads the word and compare-and-swaps it: amd64
//!   `MOVL d(RIP), r32` then `LEAQ d(RIP), rB` of the same address and
//!   `LOCK CMPXCHGL r32, (rB)`; arm64 `ADRP Xn; ADD Xn, Xn, #lo12; LDARW Wt, [Xn]` then
//!   `CASALW`/`LDAXRW` on `[Xn]`. The address must also be loaded 32 bits wide
//!   (`mProfCycle.read()`) in `runtime.mProf_PostSweep` or `runtime.mProf_Free`. Same
//!   code in Go 1.19–1.27, PIE, cgo and `-s -w` alike (amd64 and arm64, checked
//!   against `.symtab`).
//!
//! The functions are found by name through gopclntab. All addresses are link-time
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

/// Link-time address of `runtime.mProfCycle`; arguments as for [`find_mbuckets`]
/// (`valid` should cover `.bss`).
///
/// Returns an error if `runtime.mProf_Flush` is missing, has no 32-bit load that is
/// then compare-and-swapped, or neither `runtime.mProf_PostSweep` nor
/// `runtime.mProf_Free` loads the same address.
pub fn find_mprof_cycle(
    tab: &Pclntab<'_>,
    text: u64,
    code: Code<'_>,
    arch: Arch,
    valid: core::ops::Range<u64>,
) -> Result<u64, Error> {
    let flush = function_code(tab, text, code, "runtime.mProf_Flush")?;
    let at = load_then_cas32(flush, arch, &valid).ok_or(Error::NotFound {
        what: "mProfCycle load and CAS in runtime.mProf_Flush",
    })?;
    // A second reader of the same word rules out a look-alike in mProf_Flush. Either
    // function will do, so one of them being inlined away in a later Go loses nothing.
    for name in ["runtime.mProf_PostSweep", "runtime.mProf_Free"] {
        if let Ok(body) = function_code(tab, text, code, name) {
            if loads32(body, arch, at) {
                return Ok(at);
            }
        }
    }
    Err(Error::NotFound {
        what: "mProfCycle load in runtime.mProf_PostSweep or runtime.mProf_Free",
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

/// How far after a 32-bit load its compare-and-swap may start, in bytes. Go 1.19–1.27:
/// on amd64 the LEAQ starts 9 bytes after the MOVL and the CMPXCHG follows the LEAQ at
/// once; on arm64 CASALW is the 6th or 7th instruction after the LDARW, the LDAXRW of
/// the non-LSE fallback the 10th or 11th.
const CAS_WINDOW: usize = 64;

/// The target of the first 32-bit, 4-aligned global load in `body` (in `valid`) whose
/// address is compare-and-swapped soon after.
fn load_then_cas32(
    (addr, body): (u64, &[u8]),
    arch: Arch,
    valid: &core::ops::Range<u64>,
) -> Option<u64> {
    let ok = |t: u64| valid.contains(&t) && t.is_multiple_of(4);
    match arch {
        Arch::Amd64 => {
            for i in 0..body.len() {
                let Some((n, t)) = amd64_rip_movl(body.get(i..)?, addr.wrapping_add(i as u64))
                else {
                    continue;
                };
                if !ok(t) {
                    continue;
                }
                let end = i
                    .saturating_add(n)
                    .saturating_add(CAS_WINDOW)
                    .min(body.len());
                for j in i + n..end {
                    let lea = amd64_rip_lea(body.get(j..)?, addr.wrapping_add(j as u64));
                    let Some((base, _)) = lea.filter(|&(_, l)| l == t) else {
                        continue;
                    };
                    // The CAS follows the LEAQ at once in every version; allow a few
                    // bytes of register moves.
                    let lea_end = j.saturating_add(7);
                    for k in lea_end..lea_end.saturating_add(16).min(body.len()) {
                        if amd64_lock_cmpxchg32_base(body.get(k..)?) == Some(base) {
                            return Some(t);
                        }
                    }
                }
            }
            None
        }
        Arch::Arm64 => {
            let words = body.len() / 4;
            let word = |i: usize| crate::read::le32(body, i.checked_mul(4)?);
            for i in 0..words {
                let pc = addr.wrapping_add(4 * i as u64);
                let Some((rn, t)) = arm64_adrp_add(word(i)?, word(i + 1), pc) else {
                    continue;
                };
                if !ok(t) || word(i + 2).and_then(arm64_ldarw_base) != Some(rn) {
                    continue;
                }
                let end = (i + 3).saturating_add(CAS_WINDOW / 4).min(words);
                if (i + 3..end).any(|k| word(k).and_then(arm64_cas32_base) == Some(rn)) {
                    return Some(t);
                }
            }
            None
        }
    }
}

/// Whether `body` loads the 32-bit word at `target` (amd64 `MOVL d(RIP)`, arm64
/// `ADRP`+`ADD`+`LDARW`).
fn loads32((addr, body): (u64, &[u8]), arch: Arch, target: u64) -> bool {
    match arch {
        Arch::Amd64 => (0..body.len()).any(|i| {
            body.get(i..)
                .and_then(|b| amd64_rip_movl(b, addr.wrapping_add(i as u64)))
                .is_some_and(|(_, t)| t == target)
        }),
        Arch::Arm64 => {
            let word = |i: usize| crate::read::le32(body, i.checked_mul(4)?);
            (0..body.len() / 4).any(|i| {
                let pc = addr.wrapping_add(4 * i as u64);
                word(i)
                    .and_then(|w| arm64_adrp_add(w, word(i + 1), pc))
                    .is_some_and(|(rn, t)| {
                        t == target && word(i + 2).and_then(arm64_ldarw_base) == Some(rn)
                    })
            })
        }
    }
}

/// `[REX] 8B /r` with REX.W clear, mod=00, rm=101: `MOV r32, [RIP + disp32]`; returns
/// (instruction length, target).
fn amd64_rip_movl(b: &[u8], pc: u64) -> Option<(usize, u64)> {
    let rex = usize::from(matches!(b.first()?, 0x40..=0x47));
    let (&op, &modrm) = (b.get(rex)?, b.get(rex + 1)?);
    if op != 0x8b || modrm & 0xc7 != 0x05 {
        return None;
    }
    let disp = i32::from_le_bytes(b.get(rex + 2..rex + 6)?.try_into().ok()?);
    let len = rex + 6;
    Some((
        len,
        pc.wrapping_add(len as u64)
            .wrapping_add(i64::from(disp) as u64),
    ))
}

/// `REX.W 8D /r` with mod=00, rm=101: `LEA r64, [RIP + disp32]`; returns (destination
/// register 0–15, target).
fn amd64_rip_lea(b: &[u8], pc: u64) -> Option<(u8, u64)> {
    let (&rex, &op, &modrm) = (b.first()?, b.get(1)?, b.get(2)?);
    if rex & 0xf8 != 0x48 || op != 0x8d || modrm & 0xc7 != 0x05 {
        return None;
    }
    let disp = i32::from_le_bytes([*b.get(3)?, *b.get(4)?, *b.get(5)?, *b.get(6)?]);
    let reg = ((rex & 0x4) << 1) | ((modrm >> 3) & 7);
    Some((reg, pc.wrapping_add(7).wrapping_add(i64::from(disp) as u64)))
}

/// `F0 [REX] 0F B1 /r` with REX.W clear and a memory operand `0(base)`:
/// `LOCK CMPXCHGL r32, (base)`; returns the base register 0–15.
fn amd64_lock_cmpxchg32_base(b: &[u8]) -> Option<u8> {
    if *b.first()? != 0xf0 {
        return None;
    }
    let (rex, b) = match *b.get(1)? {
        r @ 0x40..=0x47 => (r, b.get(2..)?),
        _ => (0, b.get(1..)?),
    };
    let (&esc, &op, &modrm) = (b.first()?, b.get(1)?, b.get(2)?);
    if esc != 0x0f || op != 0xb1 {
        return None;
    }
    let (md, rm) = (modrm >> 6, modrm & 7);
    let (base, disp_at) = match (md, rm) {
        (3, _) | (0, 5) => return None, // register operand; RIP-relative
        (_, 4) => {
            // SIB: only "no index" (100 without REX.X) and a real base.
            let sib = *b.get(3)?;
            if (sib >> 3) & 7 != 4 || rex & 0x2 != 0 || (md == 0 && sib & 7 == 5) {
                return None;
            }
            (sib & 7, 4)
        }
        _ => (rm, 3),
    };
    // Displacement 0: none (mod=00), disp8 (01) or disp32 (10).
    let zero = match md {
        0 => true,
        1 => *b.get(disp_at)? == 0,
        _ => b.get(disp_at..disp_at + 4)? == [0, 0, 0, 0],
    };
    zero.then_some(((rex & 0x1) << 3) | base)
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

/// `ADRP Xd, page` at `pc`; returns (d, page address).
fn arm64_adrp(adrp: u32, pc: u64) -> Option<(u32, u64)> {
    if adrp & 0x9f00_0000 != 0x9000_0000 {
        return None;
    }
    let immlo = u64::from((adrp >> 29) & 0x3);
    let immhi = u64::from((adrp >> 5) & 0x7_ffff);
    let imm = (immhi << 2) | immlo; // 21 bits, signed
    let simm = ((imm << 43) as i64) >> 43;
    Some((adrp & 0x1f, (pc & !0xfff).wrapping_add((simm << 12) as u64)))
}

/// `ADRP Xn` followed by `ADD Xn, Xn, #imm12` (no shift); returns (n, address).
fn arm64_adrp_add(adrp: u32, add: Option<u32>, pc: u64) -> Option<(u32, u64)> {
    let (rd, page) = arm64_adrp(adrp, pc)?;
    let add = add?;
    (add & 0xffc0_0000 == 0x9100_0000 && (add >> 5) & 0x1f == rd && add & 0x1f == rd)
        .then(|| (rd, page.wrapping_add(u64::from((add >> 10) & 0xfff))))
}

/// `LDAR Wt, [Xn]` (32-bit load-acquire); returns n.
fn arm64_ldarw_base(w: u32) -> Option<u32> {
    (w & 0xffff_fc00 == 0x88df_fc00).then_some((w >> 5) & 0x1f)
}

/// A 32-bit compare-and-swap's access to `[Xn]`: `CAS{,A,L,AL} Ws, Wt, [Xn]` (LSE) or
/// the `LD{A,}XR Wt, [Xn]` that starts the exclusive-pair loop; returns n.
fn arm64_cas32_base(w: u32) -> Option<u32> {
    (w & 0xffa0_7c00 == 0x88a0_7c00 || w & 0xffff_7c00 == 0x885f_7c00).then_some((w >> 5) & 0x1f)
}

/// `ADRP Xn` followed by `ADD Xn, Xn, #imm` and `LDAR Xt, [Xn]` / `LDR Xt, [Xn, #imm]`
/// (Go 1.19 `MOVD` of a global), or directly by `LDR Xt, [Xn, #imm]` (Go 1.27).
fn arm64_global(adrp: u32, next: Option<u32>, third: Option<u32>, pc: u64) -> Option<u64> {
    let (rd, page) = arm64_adrp(adrp, pc)?;
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

    /// Go 1.27 amd64 `runtime.mProf_Flush` up to the CAS (PIE and non-PIE alike), at
    /// 0x43f320; `runtime.mProfCycle` at 0x628ca0.
    #[rustfmt::skip]
    const AMD64_FLUSH: [u8; 46] = [
        0x49, 0x3b, 0x66, 0x10,                   // CMPQ SP, 0x10(R14)
        0x0f, 0x86, 0xa5, 0x00, 0x00, 0x00,       // JBE
        0x55,                                     // PUSHQ BP
        0x48, 0x89, 0xe5,                         // MOVQ SP, BP
        0x48, 0x83, 0xec, 0x18,                   // SUBQ $0x18, SP
        0x90, 0x90,                               // NOPL; NOPL
        0x8b, 0x05, 0x66, 0x99, 0x1e, 0x00,       // MOVL runtime.mProfCycle(SB), AX
        0x89, 0x44, 0x24, 0x08,                   // MOVL AX, 0x8(SP)
        0x89, 0xc1,                               // MOVL AX, CX
        0x83, 0xc9, 0x01,                         // ORL $0x1, CX
        0x48, 0x8d, 0x15, 0x56, 0x99, 0x1e, 0x00, // LEAQ runtime.mProfCycle(SB), DX
        0xf0, 0x0f, 0xb1, 0x0a,                   // LOCK CMPXCHGL CX, 0(DX)
    ];
    const AMD64_FLUSH_AT: u64 = 0x43f320;
    const AMD64_CYCLE: u64 = 0x628ca0;

    #[test]
    fn amd64_mprof_flush_load_lea_cas() {
        let all = 0..u64::MAX;
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &AMD64_FLUSH), Arch::Amd64, &all),
            Some(AMD64_CYCLE)
        );
        // Go 1.27 mProf_PostSweep: 8b 0d 07 98 1e 00  MOVL runtime.mProfCycle(SB), CX
        // at 0x43f493, after 0x13 bytes of prologue.
        let mut post = std::vec![0x90u8; 0x13];
        post.extend_from_slice(&[0x8b, 0x0d, 0x07, 0x98, 0x1e, 0x00]);
        assert!(loads32((0x43f480, &post), Arch::Amd64, AMD64_CYCLE));
        assert!(!loads32((0x43f480, &post), Arch::Amd64, AMD64_CYCLE + 4));
        // Outside `valid`, or not 4-aligned: no match.
        let bss = AMD64_CYCLE + 4..u64::MAX;
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &AMD64_FLUSH), Arch::Amd64, &bss),
            None
        );
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT + 1, &AMD64_FLUSH), Arch::Amd64, &all),
            None
        );
        // The CAS on another register than the LEAQ's (0(BX)): no match.
        let mut other = AMD64_FLUSH;
        other[45] = 0x0b;
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &other), Arch::Amd64, &all),
            None
        );
        // A LEAQ of another address: no match.
        let mut other = AMD64_FLUSH;
        other[38] = 0x57;
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &other), Arch::Amd64, &all),
            None
        );
        // A 64-bit CMPXCHGQ (REX.W): no match.
        let mut q = AMD64_FLUSH.to_vec();
        q.insert(43, 0x48);
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &q), Arch::Amd64, &all),
            None
        );
        // Cut before the CAS: no match.
        assert_eq!(
            load_then_cas32((AMD64_FLUSH_AT, &AMD64_FLUSH[..44]), Arch::Amd64, &all),
            None
        );
    }

    #[test]
    fn amd64_operand_decoders() {
        // 44 8b 05 10 00 00 00   MOVL 0x10(RIP), R8D: REX.R, 7 bytes.
        assert_eq!(
            amd64_rip_movl(&[0x44, 0x8b, 0x05, 0x10, 0, 0, 0], 0x1000),
            Some((7, 0x1017))
        );
        // 8b 0d f0 ff ff ff      MOVL -0x10(RIP), CX.
        assert_eq!(
            amd64_rip_movl(&[0x8b, 0x0d, 0xf0, 0xff, 0xff, 0xff], 0x1000),
            Some((6, 0xff6))
        );
        assert_eq!(amd64_rip_movl(&[0x8b, 0x4e, 0x10, 0, 0, 0], 0x1000), None); // (SI)
        assert_eq!(
            amd64_rip_movl(&[0x8b, 0x0d, 0xf0, 0xff, 0xff], 0x1000),
            None
        );
        assert_eq!(amd64_rip_movl(&[0x44], 0x1000), None);
        // 4c 8d 0d 00 01 00 00   LEAQ 0x100(RIP), R9.
        assert_eq!(
            amd64_rip_lea(&[0x4c, 0x8d, 0x0d, 0, 1, 0, 0], 0x1000),
            Some((9, 0x1107))
        );
        assert_eq!(amd64_rip_lea(&[0x8d, 0x0d, 0, 1, 0, 0, 0], 0x1000), None); // no REX.W
        assert_eq!(amd64_rip_lea(&[0x48, 0x8d, 0x0d, 0, 1, 0], 0x1000), None); // truncated
                                                                               // LOCK CMPXCHGL, memory operand forms.
        let cas = |b: &[u8]| amd64_lock_cmpxchg32_base(b);
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x13]), Some(3)); // DX, 0(BX)
        assert_eq!(cas(&[0xf0, 0x41, 0x0f, 0xb1, 0x11]), Some(9)); // 0(R9)
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x0c, 0x24]), Some(4)); // 0(SP), SIB
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x4d, 0x00]), Some(5)); // 0(BP), disp8 0
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x8d, 0, 0, 0, 0]), Some(5)); // disp32 0
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x4d, 0x08]), None); // 8(BP)
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0xca]), None); // register operand
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x0d, 0, 0, 0, 0]), None); // RIP-relative
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x0c, 0x8b]), None); // SIB with an index
        assert_eq!(cas(&[0xf0, 0x42, 0x0f, 0xb1, 0x0c, 0x24]), None); // REX.X index
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x0c, 0x25, 0, 0, 0, 0]), None); // no base
        assert_eq!(cas(&[0xf0, 0x48, 0x0f, 0xb1, 0x13]), None); // CMPXCHGQ
        assert_eq!(cas(&[0x90, 0x0f, 0xb1, 0x13]), None); // no LOCK
        assert_eq!(cas(&[0xf0, 0x0f, 0xb0, 0x13]), None); // CMPXCHGB
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x0c]), None); // truncated SIB
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x4d]), None); // truncated disp8
        assert_eq!(cas(&[0xf0, 0x0f, 0xb1, 0x8d, 0, 0]), None); // truncated disp32
        assert_eq!(cas(&[0xf0]), None);
    }

    /// Go 1.27 arm64 `runtime.mProf_Flush` from the first NOOP to the LDAXRW fallback, at
    /// 0x4b288; `runtime.mProfCycle` at 0x232238.
    const ARM64_FLUSH: [u32; 15] = [
        0xd503_201f, // NOOP
        0xd503_201f, // NOOP
        0xf000_0f21, // ADRP 1994752(PC), R1
        0x9108_e021, // ADD $568, R1, R1
        0x88df_fc22, // LDARW (R1), R2
        0xb240_0043, // ORR $1, R2, R3
        0xf000_0f3b, // ADRP 1994752(PC), R27
        0x3948_3364, // MOVBU 524(R27), R4 (arm64HasATOMICS)
        0x3600_00c4, // TBZ $0, R4, 6(PC)
        0x9340_7c5b, // SXTW R2, R27
        0x88fb_fc23, // CASALW R27, (R1), R3
        0x6b02_037f, // CMPW R2, R27
        0x9a9f_17e4, // CSET EQ, R4
        0x1400_0007, // JMP 7(PC)
        0x885f_fc3b, // LDAXRW (R1), R27
    ];
    const ARM64_FLUSH_AT: u64 = 0x4b288;
    const ARM64_CYCLE: u64 = 0x232238;

    #[test]
    fn arm64_mprof_flush_ldarw_cas() {
        let all = 0..u64::MAX;
        let code = w(&ARM64_FLUSH);
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &code), Arch::Arm64, &all),
            Some(ARM64_CYCLE)
        );
        // Only the LL/SC loop (GOARM64 v8.0 without the LSE branch) or only CASALW.
        let mut ll = ARM64_FLUSH;
        ll[10] = 0xd503_201f;
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &w(&ll)), Arch::Arm64, &all),
            Some(ARM64_CYCLE)
        );
        let cas_only = w(&ARM64_FLUSH[..11]);
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &cas_only), Arch::Arm64, &all),
            Some(ARM64_CYCLE)
        );
        // Neither: no match. A CAS on another register (R2): no match.
        ll[14] = 0xd503_201f;
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &w(&ll)), Arch::Arm64, &all),
            None
        );
        let mut other = ARM64_FLUSH;
        other[10] = 0x88fb_fc43;
        other[14] = 0x885f_fc5b;
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &w(&other)), Arch::Arm64, &all),
            None
        );
        // A 64-bit LDAR instead of LDARW: no match; outside `valid`: no match.
        let mut x = ARM64_FLUSH;
        x[4] = 0xc8df_fc22;
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &w(&x)), Arch::Arm64, &all),
            None
        );
        assert_eq!(
            load_then_cas32((ARM64_FLUSH_AT, &code), Arch::Arm64, &(0..ARM64_CYCLE)),
            None
        );
        // Go 1.27 mProf_PostSweep at 0x4b440: ADRP, ADD, LDARW (R1), R1 at +0x1c.
        let mut post = std::vec![0xd503_201fu32; 7];
        post.extend_from_slice(&[0xf000_0f21, 0x9108_e021, 0x88df_fc21]);
        assert!(loads32((0x4b440, &w(&post)), Arch::Arm64, ARM64_CYCLE));
        assert!(!loads32(
            (0x4b440, &w(&post[..9])),
            Arch::Arm64,
            ARM64_CYCLE
        ));
        assert!(!loads32((0x4c440, &w(&post)), Arch::Arm64, ARM64_CYCLE)); // a page on
                                                                           // The CAS encodings: CAS, CASA, CASL, CASAL, LDXR, LDAXR (32-bit) on R1.
        for op in [
            0x88a0_7c00,
            0x88e0_7c00,
            0x88a0_fc00,
            0x88e0_fc00,
            0x885f_7c00,
            0x885f_fc00,
        ] {
            assert_eq!(arm64_cas32_base(op | (1 << 5) | 3), Some(1), "{op:#x}");
        }
        assert_eq!(arm64_cas32_base(0xc8e0_fc23), None); // CASAL X (64-bit)
        assert_eq!(arm64_cas32_base(0xc85f_fc3b), None); // LDAXR X (64-bit)
        assert_eq!(arm64_ldarw_base(0x88df_fc22), Some(1));
        assert_eq!(arm64_ldarw_base(0xc8df_fc22), None);
    }

    /// The decoders see arbitrary bytes in the fuzz target; here, a deterministic
    /// stream of garbage, every truncation of the real patterns and every start
    /// address, on both architectures: never a panic, no match in noise.
    #[test]
    fn mprof_cycle_decoders_survive_garbage() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut garbage = [0u8; 4096];
        for b in garbage.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let arm = w(&ARM64_FLUSH);
        let inputs: [&[u8]; 4] = [&garbage, &AMD64_FLUSH, &arm, &[0xff; 64]];
        for input in inputs {
            for cut in 0..input.len().min(64) {
                for part in [&input[cut..], &input[..cut]] {
                    for arch in [Arch::Amd64, Arch::Arm64] {
                        for addr in [0, 1, 0x43f320, u64::MAX - 8, u64::MAX] {
                            for valid in [0..u64::MAX, 0..0] {
                                let _ = load_then_cas32((addr, part), arch, &valid);
                            }
                            let _ = loads32((addr, part), arch, AMD64_CYCLE);
                        }
                    }
                    let _ = amd64_lock_cmpxchg32_base(part);
                    let _ = amd64_rip_lea(part, u64::MAX);
                    let _ = amd64_rip_movl(part, u64::MAX);
                }
            }
        }
        assert_eq!(
            load_then_cas32((0x1000, &garbage), Arch::Amd64, &(0..u64::MAX)),
            None
        );
        assert_eq!(
            load_then_cas32((0x1000, &garbage), Arch::Arm64, &(0..u64::MAX)),
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
        assert_eq!(
            find_mprof_cycle(&tab, 0x1000, code, Arch::Arm64, 0..u64::MAX),
            Err(Error::NotFound {
                what: "runtime.mProf_Flush"
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
