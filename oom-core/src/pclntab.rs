//! gopclntab (magic 0xfffffff0, Go 1.18–1.19, and 0xfffffff1, Go 1.20–1.27), moduledata,
//! and the [`Symbolizer`]: PC → function, file, line, start line, inline frames.
//!
//! Layouts: `runtime/symtab.go`, `runtime/runtime2.go` (`_func`), `internal/abi/symtab.go`
//! (`inlinedCall`, FuncIDs) of each version; see go-runtime.md §6. No DWARF, no `.symtab`:
//! this works on stripped binaries and gives what `runtime.CallersFrames` gives.

use crate::layout::Layout;
use crate::read::Reader;
use crate::Error;

/// Magic of Go 1.18–1.19 pclntabs.
pub const MAGIC_118: u32 = 0xffff_fff0;
/// Magic of Go 1.20+ pclntabs (still current in 1.27).
pub const MAGIC_120: u32 = 0xffff_fff1;
/// PCDATA index of the inline tree index table.
const PCDATA_INL_TREE_INDEX: u32 = 2;
/// FUNCDATA index of the inline tree.
const FUNCDATA_INL_TREE: u32 = 3;

/// A parsed `pcHeader` and its tables, borrowing the gopclntab bytes.
#[derive(Clone, Copy, Debug)]
pub struct Pclntab<'a> {
    r: Reader<'a>,
    magic: u32,
    quantum: u8,
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    cu: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
    func_size: usize,
    inl_size: usize,
}

impl<'a> Pclntab<'a> {
    /// Parses the pcHeader at the start of `data` (the `.gopclntab` section or the bytes
    /// at `runtime.pclntab`).
    ///
    /// Returns an error if the magic is not 0xfffffff0/0xfffffff1, the pointer size is
    /// not 8, the PC quantum is not 1, 2 or 4, or an offset or the functab lies outside `data`.
    pub fn parse(data: &'a [u8]) -> Result<Pclntab<'a>, Error> {
        let r = Reader::new(data, "pcHeader");
        let magic = r.u32(0, "magic")?;
        let (func_size, inl_size) = match magic {
            MAGIC_118 => (40, 20),
            MAGIC_120 => (44, 16),
            _ => {
                return Err(Error::Unsupported {
                    structure: "pcHeader",
                    field: "magic",
                    offset: 0,
                    value: u64::from(magic),
                })
            }
        };
        let quantum = r.u8(6, "minLC")?;
        if !matches!(quantum, 1 | 2 | 4) {
            return Err(r.invalid("minLC", 6, u64::from(quantum)));
        }
        let ptr = r.u8(7, "ptrSize")?;
        if ptr != 8 {
            return Err(Error::Unsupported {
                structure: "pcHeader",
                field: "ptrSize",
                offset: 7,
                value: u64::from(ptr),
            });
        }
        let word = |off: usize, field: &'static str| -> Result<usize, Error> {
            let v = r.u64(off, field)?;
            let u = usize::try_from(v)
                .ok()
                .filter(|&u| u <= data.len())
                .ok_or(r.invalid(field, off, v))?;
            Ok(u)
        };
        let nfunc = r.u64(8, "nfunc")?;
        let text_start = r.u64(24, "textStart")?;
        let t = Pclntab {
            r,
            magic,
            quantum,
            nfunc: 0,
            text_start,
            funcname: word(32, "funcnameOffset")?,
            cu: word(40, "cuOffset")?,
            filetab: word(48, "filetabOffset")?,
            pctab: word(56, "pctabOffset")?,
            pcln: word(64, "pclnOffset")?,
            func_size,
            inl_size,
        };
        // The functab has nfunc + 1 entries of 8 bytes.
        let nfunc = usize::try_from(nfunc)
            .ok()
            .filter(|&n| n < data.len() / 8)
            .ok_or(r.invalid("nfunc", 8, nfunc))?;
        r.bytes(t.pcln, (nfunc + 1) * 8, "functab")?;
        Ok(Pclntab { nfunc, ..t })
    }

    /// The magic: [`MAGIC_118`] or [`MAGIC_120`].
    pub fn magic(&self) -> u32 {
        self.magic
    }

    /// The PC quantum (`minLC`): 1 on amd64, 4 on arm64.
    pub fn quantum(&self) -> u8 {
        self.quantum
    }

    /// `pcHeader.textStart`: the link-time text base up to Go 1.25, 0 from 1.26 (use
    /// [`ModuleData::text`] instead).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// Number of functions.
    pub fn func_count(&self) -> usize {
        self.nfunc
    }

    /// Offset from the text base just past the last function.
    pub fn text_len(&self) -> Result<u32, Error> {
        self.r.u32(self.pcln + self.nfunc * 8, "functab")
    }

    /// The `i`th function, in address order.
    ///
    /// Returns an error if `i` is out of range or the `_func` lies outside the table.
    pub fn func(&self, i: usize) -> Result<Func<'a>, Error> {
        if i >= self.nfunc {
            return Err(Error::NotFound {
                what: "function index",
            });
        }
        let ft = self.pcln + i * 8;
        let entry_off = self.r.u32(ft, "functab entryoff")?;
        let funcoff = self.r.u32(ft + 4, "functab funcoff")? as usize;
        let end_off = self.r.u32(ft + 8, "functab entryoff")?;
        let at = self.pcln.checked_add(funcoff).ok_or(self.r.invalid(
            "functab funcoff",
            ft + 4,
            funcoff as u64,
        ))?;
        let r = self.r;
        r.bytes(at, self.func_size, "_func")?;
        let (start_line, func_id, nfuncdata) = if self.func_size == 44 {
            (
                r.u32(at + 36, "startLine")? as i32,
                r.u8(at + 40, "funcID")?,
                r.u8(at + 43, "nfuncdata")?,
            )
        } else {
            (0, r.u8(at + 36, "funcID")?, r.u8(at + 39, "nfuncdata")?)
        };
        let npcdata = r.u32(at + 28, "npcdata")?;
        // pcdata and funcdata offset arrays follow the fixed part.
        let tables = (npcdata as usize)
            .checked_add(usize::from(nfuncdata))
            .and_then(|n| n.checked_mul(4))
            .unwrap_or(usize::MAX);
        r.bytes(at + self.func_size, tables, "_func tables")?;
        Ok(Func {
            tab: *self,
            at,
            entry_off,
            end_off,
            name_off: r.u32(at + 4, "nameOff")?,
            pcfile: r.u32(at + 20, "pcfile")?,
            pcln: r.u32(at + 24, "pcln")?,
            npcdata,
            cu_offset: r.u32(at + 32, "cuOffset")?,
            start_line,
            func_id,
            nfuncdata,
        })
    }

    /// The function containing text offset `off` (`pc − text base`), like Go's `findfunc`.
    ///
    /// Returns `Ok(None)` outside the text.
    pub fn find(&self, off: u64) -> Result<Option<Func<'a>>, Error> {
        if self.nfunc == 0 || off >= u64::from(self.text_len()?) {
            return Ok(None);
        }
        // Largest i with entryoff_i <= off.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.r.u32(self.pcln + mid * 8, "functab entryoff")?) <= off {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if u64::from(self.r.u32(self.pcln + lo * 8, "functab entryoff")?) > off {
            return Ok(None);
        }
        self.func(lo).map(Some)
    }

    /// The first function named exactly `name` (a linear scan).
    ///
    /// Returns `Ok(None)` if there is none; an error if the table is malformed.
    pub fn func_by_name(&self, name: &str) -> Result<Option<Func<'a>>, Error> {
        for i in 0..self.nfunc {
            let f = self.func(i)?;
            if f.name_bytes()? == name.as_bytes() {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    fn name(&self, name_off: u32) -> Result<&'a str, Error> {
        let at = self
            .funcname
            .checked_add(name_off as usize)
            .ok_or(self.r.invalid("nameOff", 0, u64::from(name_off)))?;
        let b = self.r.cstr(at, "function name")?;
        core::str::from_utf8(b).map_err(|_| self.r.invalid("function name", at, b.len() as u64))
    }

    /// Runs the pc-value table at `table` (offset into pctab) for a function starting at
    /// text offset `entry`, returning the value at text offset `target` (−1 if absent).
    fn pcvalue(&self, table: u32, entry: u32, target: u64) -> Result<i32, Error> {
        if table == 0 {
            return Ok(-1);
        }
        let mut at = self
            .pctab
            .checked_add(table as usize)
            .ok_or(self.r.invalid("pc-value table", 0, u64::from(table)))?;
        let mut val: i32 = -1;
        let mut pc = u64::from(entry);
        let mut first = true;
        loop {
            let (d, next) = self.r.uvarint(at, "pc-value delta")?;
            if d == 0 && !first {
                return Ok(-1);
            }
            first = false;
            let dv = ((d >> 1) as i64) ^ -((d & 1) as i64);
            val = val.wrapping_add(dv as i32);
            let (dpc, next) = self.r.uvarint(next, "pc-value pc delta")?;
            at = next;
            pc = pc.saturating_add(dpc.saturating_mul(u64::from(self.quantum)));
            if target < pc {
                return Ok(val);
            }
        }
    }

    fn file(&self, cu_offset: u32, fileno: i32) -> Result<Option<&'a str>, Error> {
        if fileno < 0 {
            return Ok(None);
        }
        let idx = (cu_offset as usize)
            .checked_add(fileno as usize)
            .and_then(|i| i.checked_mul(4));
        let Some(at) = idx.and_then(|i| self.cu.checked_add(i)) else {
            return Ok(None);
        };
        let off = self.r.u32(at, "cutab")?;
        if off == u32::MAX {
            return Ok(None);
        }
        let at = self
            .filetab
            .checked_add(off as usize)
            .ok_or(self.r.invalid("cutab", at, u64::from(off)))?;
        let b = self.r.cstr(at, "file name")?;
        core::str::from_utf8(b)
            .map(Some)
            .map_err(|_| self.r.invalid("file name", at, b.len() as u64))
    }
}

/// One `_func` record.
#[derive(Clone, Copy, Debug)]
pub struct Func<'a> {
    tab: Pclntab<'a>,
    at: usize,
    /// Entry, as an offset from the text base.
    pub entry_off: u32,
    /// End (the next function's entry), as an offset from the text base.
    pub end_off: u32,
    name_off: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    /// `startLine` (0 for Go 1.19, which does not record it).
    pub start_line: i32,
    /// `funcID`.
    pub func_id: u8,
    nfuncdata: u8,
}

impl<'a> Func<'a> {
    /// The function's symbol name.
    ///
    /// Returns an error if the name lies outside the table or is not UTF-8.
    pub fn name(&self) -> Result<&'a str, Error> {
        self.tab.name(self.name_off)
    }

    fn name_bytes(&self) -> Result<&'a [u8], Error> {
        let at = self
            .tab
            .funcname
            .checked_add(self.name_off as usize)
            .ok_or(self.tab.r.invalid("nameOff", self.at + 4, 0))?;
        self.tab.r.cstr(at, "function name")
    }

    fn pcdata(&self, i: u32) -> Result<u32, Error> {
        if i >= self.npcdata {
            return Ok(0);
        }
        self.tab
            .r
            .u32(self.at + self.tab.func_size + 4 * i as usize, "pcdata")
    }

    fn funcdata(&self, i: u32) -> Result<Option<u32>, Error> {
        if i >= u32::from(self.nfuncdata) {
            return Ok(None);
        }
        let off = self.tab.r.u32(
            self.at + self.tab.func_size + 4 * (self.npcdata + i) as usize,
            "funcdata",
        )?;
        Ok((off != u32::MAX).then_some(off))
    }
}

/// The fields of `runtime.moduledata` the symbolizer needs (link-time addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleData {
    /// `pcHeader`: address of the gopclntab.
    pub pc_header: u64,
    /// `minpc`.
    pub minpc: u64,
    /// `maxpc`.
    pub maxpc: u64,
    /// `text`: the text base every functab entry is relative to.
    pub text: u64,
    /// `etext`.
    pub etext: u64,
    /// `gofunc`: base of funcdata (inline trees).
    pub gofunc: u64,
}

impl ModuleData {
    /// Parses moduledata at the start of `data` with the offsets of `layout`.
    ///
    /// Returns an error if `data` is too short or `text`/`minpc`/`etext` are inconsistent.
    pub fn parse(data: &[u8], layout: &Layout) -> Result<ModuleData, Error> {
        let r = Reader::new(data, "moduledata");
        let t = layout.moduledata_text;
        let m = ModuleData {
            pc_header: r.u64(0, "pcHeader")?,
            minpc: r.u64(t - 16, "minpc")?,
            maxpc: r.u64(t - 8, "maxpc")?,
            text: r.u64(t, "text")?,
            etext: r.u64(t + 8, "etext")?,
            gofunc: r.u64(layout.moduledata_gofunc, "gofunc")?,
        };
        if m.minpc != m.text {
            return Err(r.invalid("minpc", t - 16, m.minpc));
        }
        if m.etext < m.text || m.maxpc < m.minpc {
            return Err(r.invalid("etext", t + 8, m.etext));
        }
        Ok(m)
    }

    /// Finds moduledata in `data` (e.g. `.noptrdata` or `.go.module`, or process memory)
    /// by its first word, which equals `pclntab_addr`; returns its offset in `data` too.
    ///
    /// Returns an error if no 8-aligned candidate parses.
    pub fn find(
        data: &[u8],
        pclntab_addr: u64,
        layout: &Layout,
    ) -> Result<(usize, ModuleData), Error> {
        let needle = pclntab_addr.to_le_bytes();
        for (i, w) in data.chunks_exact(8).enumerate() {
            if w == needle {
                if let Some(rest) = data.get(i * 8..) {
                    if let Ok(m) = ModuleData::parse(rest, layout) {
                        return Ok((i * 8, m));
                    }
                }
            }
        }
        Err(Error::NotFound {
            what: "runtime.firstmoduledata",
        })
    }
}

/// One symbolized PC, as `runtime.CallersFrames` reports it for a single return PC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The call PC (return PC − 1 unless at the entry), runtime address.
    pub pc: u64,
    /// Entry of the physical function, runtime address (0 if unknown).
    pub entry: u64,
    /// Raw symbol name of the innermost function at the PC ("" if unknown).
    pub function: &'a str,
    /// Source file ("" if unknown, "?" if the tables have no entry).
    pub file: &'a str,
    /// Source line (0 if unknown).
    pub line: i64,
    /// Start line of the function (0 if unknown or Go 1.19).
    pub start_line: i64,
    /// The frame is an inlined call (Go's `Frame.Func == nil` for a known PC).
    pub inlined: bool,
    /// FuncID of the (inlined or physical) function.
    pub func_id: u8,
}

impl Frame<'_> {
    /// A frame for a PC outside Go text, as `allFrames` makes it: PC − 1, nothing else.
    pub fn unknown(pc: u64) -> Self {
        Frame {
            pc: pc.wrapping_sub(1),
            entry: 0,
            function: "",
            file: "",
            line: 0,
            start_line: 0,
            inlined: false,
            func_id: 0,
        }
    }

    /// True when this frame came from the tables (Go's `funcInfo.valid()`).
    pub fn is_known(&self) -> bool {
        self.entry != 0
    }
}

/// PC → frames for one binary: a pclntab, its text base and gofunc data, and the load
/// bias of the process the PCs come from.
#[derive(Clone, Copy, Debug)]
pub struct Symbolizer<'a> {
    tab: Pclntab<'a>,
    text: u64,
    gofunc: &'a [u8],
    bias: u64,
    layout: Layout,
}

/// One level of the inline unwinding of a PC (Go's `inlineFrame`), innermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InlineLevel {
    /// The PC at this level (call PC, runtime address).
    pub pc: u64,
    /// FuncID of the function at this level.
    pub func_id: u8,
}

impl<'a> Symbolizer<'a> {
    /// Builds a symbolizer.
    ///
    /// - `text`: link-time text base, from [`ModuleData::text`] (or, up to Go 1.25,
    ///   [`Pclntab::text_start`]); never the `.text` section address (wrong for cgo).
    /// - `gofunc`: the bytes of the binary starting at link-time address
    ///   [`ModuleData::gofunc`] up to the end of its section (inline trees live there).
    /// - `bias`: runtime address − link address of the executable (0 for non-PIE).
    pub fn new(
        tab: Pclntab<'a>,
        text: u64,
        gofunc: &'a [u8],
        bias: u64,
        layout: Layout,
    ) -> Symbolizer<'a> {
        Symbolizer {
            tab,
            text,
            gofunc,
            bias,
            layout,
        }
    }

    /// The pclntab.
    pub fn pclntab(&self) -> &Pclntab<'a> {
        &self.tab
    }

    /// The layout given at construction.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The load bias given at construction.
    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// The function containing runtime address `pc` (Go's `findfunc`).
    ///
    /// Returns an error if the tables are malformed.
    pub fn func_at(&self, pc: u64) -> Result<Option<Func<'a>>, Error> {
        let Some(off) = pc.wrapping_sub(self.bias).checked_sub(self.text) else {
            return Ok(None);
        };
        self.tab.find(off)
    }

    /// Runtime address of a function's entry.
    pub fn entry(&self, f: &Func<'a>) -> u64 {
        self.text
            .wrapping_add(u64::from(f.entry_off))
            .wrapping_add(self.bias)
    }

    /// The inline tree index at text offset `off` in `f`, or −1.
    fn inl_index(&self, f: &Func<'a>, off: u64) -> Result<i32, Error> {
        if f.funcdata(FUNCDATA_INL_TREE)?.is_none() {
            return Ok(-1);
        }
        let t = f.pcdata(PCDATA_INL_TREE_INDEX)?;
        self.tab.pcvalue(t, f.entry_off, off)
    }

    /// Reads inline tree entry `ix` of `f`: (funcID, nameOff, parentPc, startLine).
    fn inl_entry(&self, f: &Func<'a>, ix: i32) -> Result<(u8, u32, u32, i32), Error> {
        let base = f.funcdata(FUNCDATA_INL_TREE)?.ok_or(Error::NotFound {
            what: "inline tree",
        })?;
        let r = Reader::new(self.gofunc, "inlinedCall");
        let at = (ix as usize)
            .checked_mul(self.tab.inl_size)
            .and_then(|x| x.checked_add(base as usize))
            .filter(|&a| a <= self.gofunc.len())
            .ok_or(r.truncated("inlinedCall", base as usize))?;
        if self.tab.inl_size == 16 {
            // Go 1.20+: funcID u8, pad [3]u8, nameOff i32, parentPc i32, startLine i32.
            Ok((
                r.u8(at, "funcID")?,
                r.u32(at + 4, "nameOff")?,
                r.u32(at + 8, "parentPc")?,
                r.u32(at + 12, "startLine")? as i32,
            ))
        } else {
            // Go 1.18/1.19: parent i16, funcID u8, pad, file i32, line i32, func_ i32, parentPc i32.
            Ok((
                r.u8(at + 2, "funcID")?,
                r.u32(at + 12, "func_")?,
                r.u32(at + 16, "parentPc")?,
                0,
            ))
        }
    }

    /// Frame of return PC `pc` (runtime address), exactly as
    /// `runtime.CallersFrames([]uintptr{pc})` yields it: the innermost function at pc − 1.
    ///
    /// Returns an error if the tables are malformed.
    pub fn frame(&self, pc: u64) -> Result<Frame<'a>, Error> {
        let Some(f) = self.func_at(pc)? else {
            return Ok(Frame::unknown(pc));
        };
        let entry = self.entry(&f);
        let call = if pc > entry { pc - 1 } else { pc };
        let off = call.wrapping_sub(self.bias).wrapping_sub(self.text);
        let ix = self.inl_index(&f, off)?;
        let (function, start_line, func_id, inlined) = if ix >= 0 {
            let (id, name_off, _, start) = self.inl_entry(&f, ix)?;
            (self.tab.name(name_off)?, start, id, true)
        } else {
            (f.name()?, f.start_line, f.func_id, false)
        };
        let fileno = self.tab.pcvalue(f.pcfile, f.entry_off, off)?;
        let line = self.tab.pcvalue(f.pcln, f.entry_off, off)?;
        let file = match (line, self.tab.file(f.cu_offset, fileno)?) {
            (l, Some(name)) if l >= 0 => name,
            _ => "?",
        };
        let line = if file == "?" { 0 } else { i64::from(line) };
        Ok(Frame {
            pc: call,
            entry,
            function,
            file,
            line,
            start_line: i64::from(start_line),
            inlined,
            func_id,
        })
    }

    /// Name of the innermost function at exactly `pc` (no − 1), as
    /// `runtime.FuncForPC(pc).Name()` gives it up to shape elision; `None` outside Go text.
    ///
    /// Returns an error if the tables are malformed.
    pub fn name_at(&self, pc: u64) -> Result<Option<&'a str>, Error> {
        let Some(f) = self.func_at(pc)? else {
            return Ok(None);
        };
        let off = pc.wrapping_sub(self.bias).wrapping_sub(self.text);
        let ix = self.inl_index(&f, off)?;
        if ix >= 0 {
            let (_, name_off, _, _) = self.inl_entry(&f, ix)?;
            return self.tab.name(name_off).map(Some);
        }
        f.name().map(Some)
    }

    /// Walks the inline tree at call PC `call` (runtime address): calls `visit` for
    /// each level, innermost first, ending with the physical function (Go's
    /// `inlineUnwinder`). At most 1024 levels.
    ///
    /// Returns an error if the tables are malformed.
    pub fn inline_levels(
        &self,
        call: u64,
        mut visit: impl FnMut(InlineLevel),
    ) -> Result<(), Error> {
        let Some(f) = self.func_at(call)? else {
            return Ok(());
        };
        let mut pc = call;
        for _ in 0..1024 {
            let off = pc.wrapping_sub(self.bias).wrapping_sub(self.text);
            let ix = self.inl_index(&f, off)?;
            if ix < 0 {
                visit(InlineLevel {
                    pc,
                    func_id: f.func_id,
                });
                return Ok(());
            }
            let (func_id, _, parent_pc, _) = self.inl_entry(&f, ix)?;
            visit(InlineLevel { pc, func_id });
            pc = self.entry(&f).wrapping_add(u64::from(parent_pc));
        }
        Err(Error::Invalid {
            structure: "inlinedCall",
            field: "parentPc",
            offset: 0,
            value: pc,
        })
    }

    /// True when `func_id` is a wrapper that Go elides below a callee with `callee_id`
    /// (`elideWrapperCalling`: kept only when calling gopanic, sigpanic or panicwrap).
    pub fn elides_wrapper(&self, func_id: u8, callee_id: u8) -> bool {
        let ids = &self.layout.func_ids;
        func_id == ids.wrapper
            && !(callee_id == ids.gopanic
                || callee_id == ids.sigpanic
                || callee_id == ids.panicwrap)
    }
}

/// Writes Go's print form of a symbol name (`Frame.Function` in Go 1.21+): generic
/// shape arguments become `[...]`. Returns the up-to-five pieces to concatenate.
pub fn print_name_pieces(name: &str) -> [&str; 5] {
    let whole = [name, "", "", "", ""];
    let Some(i) = name.find('[') else {
        return whole;
    };
    let Some(j) = name.rfind(']') else {
        return whole;
    };
    if j <= i {
        return whole;
    }
    let (Some(head), Some(interior), Some(tail)) =
        (name.get(..i), name.get(i + 1..j), name.get(j + 1..))
    else {
        return whole;
    };
    if !interior.contains('[') {
        return [head, "[...]", tail, "", ""];
    }
    // A generic method of a generic type: "T[...]).M[...]" → find "]…[" at depth 0.
    let mut depth = 1i32;
    let (mut rbr, mut lbr) = (None, None);
    for (k, c) in interior.char_indices() {
        if c == '[' {
            depth += 1;
            if depth != 1 {
                continue;
            }
            lbr = Some(k);
            break;
        }
        if c == ']' {
            depth -= 1;
            if depth < 0 {
                break;
            }
            if depth != 0 {
                continue;
            }
            rbr = Some(k);
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                if let Some(mid) = interior.get(r + 1..l) {
                    return [head, "[...]", mid, "[...]", tail];
                }
            }
            (None, None) => return [head, "[...]", tail, "", ""],
            _ => {}
        }
    }
    whole
}
