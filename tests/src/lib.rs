//! Test support: a private redis-server per test, waiting with deadlines.
