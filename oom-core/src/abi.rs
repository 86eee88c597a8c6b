//! The capture record format shared with the kernel program.
//!
//! Mirrors `oom-bpf/include/oom_abi.h`, the one definition of every struct and limit
//! shared between the BPF program and user space.
