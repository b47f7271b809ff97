//! Wiring of `serve`: bind, spawn, run until shutdown, drain.
