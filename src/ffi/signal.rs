//! Signals to child process groups (`credential_process`): `killpg(2)` through libc, because the
//! official Fluent Bit images are distroless and have no `kill` binary to run instead.

/// Sends `SIGKILL` to every process of the group `pgid` (a child started with
/// `process_group(0)` leads a group whose id is its pid). `pgid` 0 or 1 or beyond `pid_t` is
/// refused: `killpg(0)` would hit our own group and `killpg(1)` init's.
#[cfg(unix)]
pub fn kill_process_group(pgid: u32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: killpg takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::killpg(pgid, libc::SIGKILL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub fn kill_process_group(_pgid: u32) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
