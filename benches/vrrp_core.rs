//! Decode, encode and one instance handling an advertisement.
fn main() {}
