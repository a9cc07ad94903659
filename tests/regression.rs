//! Regression tests: one per defect fixed, named after the issue and what it guards
//! (`issue_11_...`), each failing before its fix. The model is ripgrep's
//! `tests/regression.rs`. Tests that need a container engine use the same harness as the
//! other integration tests (`scripts/test-env/engines.sh` exports the sockets).

mod common;
