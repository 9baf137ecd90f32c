//! Shared helpers for floe's simulation and interop tests.

/// The README's code samples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
