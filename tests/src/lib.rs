//! Shared helpers for floe's simulation and interop tests.
#![allow(clippy::disallowed_methods)] // tests run real processes and read the clock

pub mod interop;
pub mod sim;

/// The README's code samples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
