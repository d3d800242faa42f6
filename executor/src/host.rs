//! Facts about the machine an executor runs on, for its registration.

/// The host name, from the kernel or `$HOSTNAME`; `"localhost"` if neither
/// says (the name is informational: it only feeds the default executor id).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
