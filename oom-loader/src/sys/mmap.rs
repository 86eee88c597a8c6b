//! Read-only file mappings for binary analysis.

use std::fs::File;
use std::io;

/// Maps `file` read-only and private. Only the pages analysis touches are read, so a
/// huge executable costs address space, not memory.
///
/// Returns an error if mmap(2) fails (e.g. the file is not a regular file).
pub fn map_readonly(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private; we never hand out `&mut`. Another
    // process truncating the file could make later reads fault (SIGBUS); executables
    // are opened through /proc/PID/exe while they run, and the kernel refuses writes to
    // a running executable (ETXTBSY), which is the case this crate relies on.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// Drops this process's page-table references to `map`'s pages (they stay in the page
/// cache and come back on the next touch): the analysis cache keeps executables mapped
/// for later symbolization without holding their pages in the daemon's RSS.
pub fn release(map: &memmap2::Mmap) {
    // SAFETY: MADV_DONTNEED on a private, read-only file mapping only discards our page
    // references; the next access re-reads the same bytes from the file. No reference
    // into the mapping is invalidated (its contents cannot change), so this is sound.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}
