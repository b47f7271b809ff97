//! Tests of the simulated sampler: it sees what the real one would.
