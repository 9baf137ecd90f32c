#![no_main]
// The body is in the library, shared with the corpus replay test: fuzz/src/stun_parse.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_fuzz::stun_parse::run(data));
