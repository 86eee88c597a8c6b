//! oomprof loader.
