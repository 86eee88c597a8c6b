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
        if m.text == 0 {
            return Err(r.invalid("text", t, 0));
        }
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

/// A hand-built Go 1.20+ gopclntab for unit tests (also used by `pprof`'s tests).
///
/// Text base 0x1000, PC quantum 1, one file `/src/main.go`:
/// - `main.outer` [0x1000, 0x1040), start line 3: line 10 below 0x1010, else 20; the
///   range [0x1010, 0x1020) is `main.inner` (start line 5) inlined, parentPc 0x30.
/// - `runtime.malg` [0x1040, 0x1080), start line 25: line 30.
#[cfg(test)]
pub(crate) mod testdata {
    use std::vec::Vec;

    fn u32s(v: &mut Vec<u8>, xs: &[u32]) {
        for x in xs {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// (pclntab bytes, gofunc bytes)
    pub(crate) fn tables() -> (Vec<u8>, Vec<u8>) {
        let names: &[u8] = b"main.outer\0main.inner\0runtime.malg\0"; // nameOffs 0, 11, 22
        let files: &[u8] = b"/src/main.go\0";
        // pc-value tables, each pair (zigzag value delta, pc delta), 0-terminated.
        let mut pctab = std::vec![0u8]; // offset 0 means "no table"
        let pcfile = pctab.len() as u32;
        pctab.extend_from_slice(&[0x02, 0x40, 0x00]); // file 0 over 0x40
        let pcln0 = pctab.len() as u32;
        pctab.extend_from_slice(&[0x16, 0x10, 0x14, 0x30, 0x00]); // 10 over 0x10, 20 over 0x30
        let inl0 = pctab.len() as u32;
        pctab.extend_from_slice(&[0x00, 0x10, 0x02, 0x10, 0x01, 0x20, 0x00]); // -1, 0, -1
        let pcln1 = pctab.len() as u32;
        pctab.extend_from_slice(&[0x3e, 0x40, 0x00]); // 30 over 0x40

        let mut t = std::vec![0u8; 72];
        let funcname = t.len();
        t.extend_from_slice(names);
        while !t.len().is_multiple_of(4) {
            t.push(0);
        }
        let cu = t.len();
        u32s(&mut t, &[0]); // cutab[0] = file offset 0
        let filetab = t.len();
        t.extend_from_slice(files);
        let pct = t.len();
        t.extend_from_slice(&pctab);
        while !t.len().is_multiple_of(8) {
            t.push(0);
        }
        let pcln = t.len();
        // functab: {entryoff, funcoff} × 2, then the end of text.
        u32s(&mut t, &[0, 24, 0x40, 96, 0x80, 0]);
        // _func main.outer: entryOff, nameOff, args, deferreturn, pcsp, pcfile, pcln,
        // npcdata, cuOffset, startLine; funcID, flag, pad, nfuncdata.
        u32s(&mut t, &[0, 0, 0, 0, 0, pcfile, pcln0, 3, 0, 3]);
        t.extend_from_slice(&[0, 0, 0, 4]);
        u32s(&mut t, &[0, 0, inl0]); // pcdata: unsafe point, stack map, inline tree index
        u32s(&mut t, &[u32::MAX, u32::MAX, u32::MAX, 0]); // funcdata[3]: inline tree at gofunc+0
        assert_eq!(t.len(), pcln + 96);
        // _func runtime.malg.
        u32s(&mut t, &[0x40, 22, 0, 0, 0, pcfile, pcln1, 0, 0, 25]);
        t.extend_from_slice(&[0, 0, 0, 0]);
        // pcHeader.
        let mut h = Vec::new();
        u32s(&mut h, &[0xffff_fff1]);
        h.extend_from_slice(&[0, 0, 1, 8]); // pad, minLC 1, ptrSize 8
        for w in [
            2u64,
            1,
            0x1000,
            funcname as u64,
            cu as u64,
            filetab as u64,
            pct as u64,
            pcln as u64,
        ] {
            h.extend_from_slice(&w.to_le_bytes()); // nfunc, nfiles, textStart, offsets
        }
        t[..72].copy_from_slice(&h);
        // gofunc: inlinedCall {funcID 0, pad, nameOff 11 (main.inner), parentPc 0x30, startLine 5}.
        let mut g = std::vec![0u8, 0, 0, 0];
        u32s(&mut g, &[11, 0x30, 5]);
        (t, g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::GoVersion;

    fn layout(minor: u16) -> Layout {
        Layout::for_version(GoVersion { minor, patch: 0 }).unwrap()
    }

    #[test]
    fn parses_header_and_functions() {
        let (t, _) = testdata::tables();
        let p = Pclntab::parse(&t).unwrap();
        assert_eq!(
            (p.magic(), p.quantum(), p.text_start(), p.func_count()),
            (MAGIC_120, 1, 0x1000, 2)
        );
        assert_eq!(p.text_len(), Ok(0x80));
        let f = p.func(1).unwrap();
        assert_eq!(
            (f.name(), f.entry_off, f.end_off, f.start_line),
            (Ok("runtime.malg"), 0x40, 0x80, 25)
        );
        assert!(matches!(p.func(2), Err(Error::NotFound { .. })));
        assert_eq!(p.find(0x3f).unwrap().map(|f| f.entry_off), Some(0));
        assert_eq!(p.find(0x40).unwrap().map(|f| f.entry_off), Some(0x40));
        assert!(p.find(0x80).unwrap().is_none());
        assert_eq!(
            p.func_by_name("runtime.malg").unwrap().map(|f| f.entry_off),
            Some(0x40)
        );
        assert!(p.func_by_name("main.nope").unwrap().is_none());
    }

    #[test]
    fn frames_like_callers_frames() {
        let (t, g) = testdata::tables();
        let s = Symbolizer::new(Pclntab::parse(&t).unwrap(), 0x1000, &g, 0, layout(27));
        let f = s.frame(0x1015).unwrap();
        assert_eq!(
            f,
            Frame {
                pc: 0x1014,
                entry: 0x1000,
                function: "main.inner",
                file: "/src/main.go",
                line: 20,
                start_line: 5,
                inlined: true,
                func_id: 0
            }
        );
        let f = s.frame(0x1031).unwrap();
        assert_eq!(
            (f.function, f.line, f.start_line, f.inlined),
            ("main.outer", 20, 3, false)
        );
        assert_eq!(s.frame(0x1008).unwrap().line, 10);
        assert_eq!(s.frame(0x1000).unwrap().pc, 0x1000); // at the entry: no − 1
        assert_eq!(s.frame(0x2000).unwrap(), Frame::unknown(0x2000));
        assert_eq!(s.name_at(0x1010).unwrap(), Some("main.inner"));
        assert_eq!(s.name_at(0x1050).unwrap(), Some("runtime.malg"));
        assert_eq!(s.name_at(0xfff).unwrap(), None);
        let mut levels = std::vec::Vec::new();
        s.inline_levels(0x1014, |l| levels.push(l)).unwrap();
        assert_eq!(
            levels,
            [
                InlineLevel {
                    pc: 0x1014,
                    func_id: 0
                },
                InlineLevel {
                    pc: 0x1030,
                    func_id: 0
                }
            ]
        );
    }

    #[test]
    fn load_bias_is_subtracted() {
        let (t, g) = testdata::tables();
        let s = Symbolizer::new(
            Pclntab::parse(&t).unwrap(),
            0x1000,
            &g,
            0x5550_0000,
            layout(27),
        );
        let f = s.frame(0x5550_1015).unwrap();
        assert_eq!(
            (f.pc, f.entry, f.function),
            (0x5550_1014, 0x5550_1000, "main.inner")
        );
        assert_eq!(s.bias(), 0x5550_0000);
    }

    #[test]
    fn header_errors() {
        let (t, _) = testdata::tables();
        let mut bad = t.clone();
        bad[0] = 0xfb; // Go 1.2–1.15 magic
        assert!(matches!(
            Pclntab::parse(&bad),
            Err(Error::Unsupported { field: "magic", .. })
        ));
        let mut bad = t.clone();
        bad[6] = 3;
        assert!(matches!(
            Pclntab::parse(&bad),
            Err(Error::Invalid {
                field: "minLC",
                offset: 6,
                ..
            })
        ));
        let mut bad = t.clone();
        bad[7] = 4;
        assert!(matches!(
            Pclntab::parse(&bad),
            Err(Error::Unsupported {
                field: "ptrSize",
                ..
            })
        ));
        let mut bad = t.clone();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(&bad),
            Err(Error::Invalid {
                field: "funcnameOffset",
                offset: 32,
                ..
            })
        ));
        let mut bad = t.clone();
        bad[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(&bad),
            Err(Error::Invalid { field: "nfunc", .. })
        ));
        assert!(matches!(
            Pclntab::parse(&t[..30]),
            Err(Error::Truncated {
                field: "textStart",
                offset: 24,
                ..
            })
        ));
        let pcln = u64::from_le_bytes(t[64..72].try_into().unwrap()) as usize;
        assert!(matches!(
            Pclntab::parse(&t[..pcln + 8]),
            Err(Error::Truncated {
                field: "functab",
                ..
            })
        ));
    }

    #[test]
    fn table_errors() {
        let (t, g) = testdata::tables();
        let pcln = u64::from_le_bytes(t[64..72].try_into().unwrap()) as usize;
        // A funcoff pointing past the end.
        let mut bad = t.clone();
        bad[pcln + 4..pcln + 8].copy_from_slice(&0x10_0000u32.to_le_bytes());
        let p = Pclntab::parse(&bad).unwrap();
        assert!(matches!(
            p.func(0),
            Err(Error::Truncated { field: "_func", .. })
        ));
        // A pc-value table that never ends.
        let mut bad = t.clone();
        let at = pcln + 24 + 24; // _func main.outer .pcln
        bad[at..at + 4].copy_from_slice(&0x10_0000u32.to_le_bytes());
        let p = Pclntab::parse(&bad).unwrap();
        let s = Symbolizer::new(p, 0x1000, &g, 0, layout(27));
        assert!(matches!(
            s.frame(0x1008),
            Err(Error::Truncated {
                field: "pc-value delta",
                ..
            })
        ));
        // An inline tree outside gofunc.
        let s = Symbolizer::new(Pclntab::parse(&t).unwrap(), 0x1000, &g[..4], 0, layout(27));
        assert!(matches!(
            s.frame(0x1015),
            Err(Error::Truncated {
                structure: "inlinedCall",
                ..
            })
        ));
        // Names that are not UTF-8.
        let mut bad = t.clone();
        let fname = u64::from_le_bytes(t[32..40].try_into().unwrap()) as usize;
        bad[fname] = 0xff;
        assert!(matches!(
            Pclntab::parse(&bad).unwrap().func(0).unwrap().name(),
            Err(Error::Invalid {
                field: "function name",
                ..
            })
        ));
    }

    fn moduledata(text: u64, minpc: u64, layout: &Layout) -> std::vec::Vec<u8> {
        let mut m = std::vec![0u8; layout.moduledata_gofunc + 8];
        m[..8].copy_from_slice(&0x40_0000u64.to_le_bytes()); // pcHeader
        let t = layout.moduledata_text;
        m[t - 16..t - 8].copy_from_slice(&minpc.to_le_bytes()); // minpc
        m[t - 8..t].copy_from_slice(&(text + 0x100).to_le_bytes()); // maxpc
        m[t..t + 8].copy_from_slice(&text.to_le_bytes()); // text
        m[t + 8..t + 16].copy_from_slice(&(text + 0x100).to_le_bytes()); // etext
        let g = layout.moduledata_gofunc;
        m[g..g + 8].copy_from_slice(&0x50_0000u64.to_le_bytes()); // gofunc
        m
    }

    #[test]
    fn moduledata_parse_and_find() {
        for minor in [19, 21, 27] {
            let l = layout(minor);
            let m = moduledata(0x40_1000, 0x40_1000, &l);
            let md = ModuleData::parse(&m, &l).unwrap();
            assert_eq!(
                (md.text, md.gofunc, md.pc_header),
                (0x40_1000, 0x50_0000, 0x40_0000)
            );
            let mut hay = std::vec![0u8; 64];
            hay[8..16].copy_from_slice(&0x40_0000u64.to_le_bytes()); // decoy word, bad moduledata
            hay.extend_from_slice(&m);
            assert_eq!(ModuleData::find(&hay, 0x40_0000, &l).unwrap().0, 64);
        }
        let l = layout(27);
        let bad = moduledata(0x40_1000, 0x40_2000, &l);
        assert!(matches!(
            ModuleData::parse(&bad, &l),
            Err(Error::Invalid { field: "minpc", .. })
        ));
        assert!(matches!(
            ModuleData::parse(&bad[..100], &l),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(
            ModuleData::find(&bad, 0x40_0000, &l),
            Err(Error::NotFound {
                what: "runtime.firstmoduledata"
            })
        );
    }

    /// Writes fuzz seeds built from the hand-made tables into `fuzz/seeds/`:
    /// `cargo test -p oom-core --lib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let (t, _) = testdata::tables();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        let len = (t.len() as u16).to_le_bytes();
        let stacks: std::vec::Vec<u8> = [
            0x1015u64, 0x1031, 0x1050, 0x1008, 0x1008, 0x1015, 0x9000, 0x1050,
        ]
        .iter()
        .flat_map(|p| p.to_le_bytes())
        .collect();
        let seeds: [(&str, std::vec::Vec<u8>); 3] = [
            (
                "pclntab",
                [&[8u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &t].concat(),
            ),
            (
                "encode",
                [&[len[0], len[1], 8, 0][..], &t, &stacks].concat(),
            ),
            (
                "stripped",
                [&len[..], &t, &[0x48, 0x8b, 0x0d, 0x10, 0, 0, 0][..]].concat(),
            ),
        ];
        for (target, bytes) in seeds {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("testdata-tables"), bytes).unwrap();
        }
    }

    #[test]
    fn print_names() {
        assert_eq!(print_name_pieces("main.f").concat(), "main.f");
        assert_eq!(
            print_name_pieces("main.newBox[go.shape.int]").concat(),
            "main.newBox[...]"
        );
        assert_eq!(
            print_name_pieces("main.(*T[go.shape.int]).M[go.shape.string]").concat(),
            "main.(*T[...]).M[...]"
        );
        assert_eq!(
            print_name_pieces("type:.eq.[2]interface {}").concat(),
            "type:.eq.[...]interface {}"
        );
        assert_eq!(print_name_pieces("a]b[").concat(), "a]b[");
    }
}
