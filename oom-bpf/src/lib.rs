//! The compiled oomprof BPF object.
