//! The small system-call helpers both socket backends (`afpacket`, `afxdp`) use: one place
//! for their `unsafe`.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::RawFd;

/// `setsockopt(2)` with a typed value.
pub(crate) fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> libc::c_int {
    // SAFETY: `value` points to a live T of exactly the size passed.
    unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t) }
}

/// A zeroed `ifreq` naming interface `name`, or `None` when the name cannot be one (a NUL
/// inside, or longer than IFNAMSIZ).
pub(crate) fn ifreq_for(name: &str) -> Option<libc::ifreq> {
    let cname = CString::new(name).ok()?;
    let bytes = cname.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is a plain C struct (a name and a union of integers); all zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Some(ifr)
}
