#![no_main]
// The body is in the library, shared with the corpus replay test: fuzz/src/turn_server.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_fuzz::turn_server::run(data));
