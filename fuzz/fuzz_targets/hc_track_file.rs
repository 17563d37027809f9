//! The number in a tracked file (keepalived's `track_file`), through
//! `healthcheck::parse_tracked_value`. Any bytes, as the probe reads them
//! (at most 127): the value agrees exactly with keepalived 2.2.7's reading
//! (`trackers/track_file.c`), made here with the C library's own
//! `strtol(buf, NULL, 0)` on the NUL-terminated buffer: a number out of
//! `long` range (ERANGE) or beyond `int` (except `INT_MAX + 1`) is ignored.
#![no_main]

use std::ffi::CStr;

use libfuzzer_sys::fuzz_target;

/// keepalived's reading of `buf` (at most 127 bytes): `None` to ignore.
fn keepalived(buf: &[u8]) -> Option<i64> {
    let mut c = buf.to_vec();
    c.push(0);
    let text = CStr::from_bytes_until_nul(&c).expect("NUL-terminated");
    // SAFETY: `text` is a valid NUL-terminated string that outlives the
    // call; a null end pointer is allowed; errno is thread-local.
    let (value, errno) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtol(text.as_ptr(), std::ptr::null_mut(), 0);
        (v, *libc::__errno_location())
    };
    let value = i64::from(value);
    (errno == 0 && (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1).contains(&value))
        .then_some(value)
}

fuzz_target!(|data: &[u8]| {
    let buf = &data[..data.len().min(127)];
    assert_eq!(
        healthcheck::parse_tracked_value(buf),
        keepalived(buf),
        "{:?}",
        String::from_utf8_lossy(buf)
    );
});
