//! Reading another process's memory through `/proc/PID/mem` (positional reads, no
//! signals, nothing written, no ptrace stop). Needs ptrace-read access to the target:
//! the same user under Yama scope 0/1 rules, or CAP_SYS_PTRACE.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An open view of one process's address space.
#[derive(Debug)]
pub struct ProcMem {
    file: File,
    pid: i32,
}

impl ProcMem {
    /// Opens `/proc/PID/mem` under `proc_root`.
    ///
    /// Returns an error if the process is gone or access is denied.
    pub fn open(proc_root: &Path, pid: i32) -> io::Result<ProcMem> {
        let file = File::open(proc_root.join(pid.to_string()).join("mem"))?;
        Ok(ProcMem { file, pid })
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Fills `buf` from address `addr`.
    ///
    /// Returns an error if any byte of the range is unmapped (EIO) or the process is gone.
    pub fn read_exact(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, addr)
    }

    /// Reads up to `buf.len()` bytes from `addr`, stopping early at unmapped memory;
    /// returns how many were read.
    ///
    /// Returns an error if not even the first byte can be read.
    pub fn read_some(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], addr + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// Reads a little-endian u64 at `addr`.
    ///
    /// Returns an error if the word cannot be read.
    pub fn u64(&self, addr: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32 at `addr`.
    ///
    /// Returns an error if the word cannot be read.
    pub fn u32(&self, addr: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads one byte at `addr`.
    ///
    /// Returns an error if the byte cannot be read.
    pub fn u8(&self, addr: u64) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(addr, &mut b)?;
        Ok(b[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let value: u64 = 0x1122_3344_5566_7788;
        let m = ProcMem::open(Path::new("/proc"), std::process::id() as i32).unwrap();
        let addr = &value as *const u64 as u64;
        assert_eq!(m.u64(addr).unwrap(), value);
        assert_eq!(m.u32(addr).unwrap(), 0x5566_7788);
        assert_eq!(m.u8(addr).unwrap(), 0x88);
    }

    #[test]
    fn unmapped_memory_is_an_error() {
        let m = ProcMem::open(Path::new("/proc"), std::process::id() as i32).unwrap();
        assert!(m.u64(8).is_err());
        let mut buf = [0u8; 16];
        assert!(m.read_some(8, &mut buf).is_err());
    }
}
