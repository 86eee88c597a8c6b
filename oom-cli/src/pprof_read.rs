//! Reading pprof profiles (ours or anyone's) for `top` and `flame`.
