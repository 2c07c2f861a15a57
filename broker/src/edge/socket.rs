//! Cutting off a connection that misbehaves, for good. [`SocketKiller`] holds a duplicate of
//! the connection's file descriptor. Closing a WebSocket politely needs the peer to read; a
//! peer that stopped reading never does, and its kernel buffers would keep the connection (and
//! its memory) alive indefinitely. Killing it resets the TCP connection (`SO_LINGER` 0, then
//! `shutdown`), so actix's dispatcher fails its next write and drops the connection. The
//! duplicate descriptor is owned, so it can never hit an unrelated socket that reused the
//! number.

/// Resets a connection's TCP socket, whatever state its buffers are in.
#[derive(Debug)]
pub struct SocketKiller {
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
}

impl SocketKiller {
    /// Keep a duplicate of the socket of an accepted connection (plain TCP or TLS).
    pub fn for_connection(conn: &dyn std::any::Any) -> Option<SocketKiller> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let tcp = if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                tcp
            } else if let Some(tls) =
                conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>()
            {
                tls.get_ref().0
            } else {
                return None;
            };
            tcp.as_fd().try_clone_to_owned().ok().map(|fd| SocketKiller { fd })
        }
        #[cfg(not(unix))]
        {
            let _ = conn;
            None
        }
    }

    /// Reset the connection: pending data is discarded and the peer gets an RST.
    pub fn kill(&self) {
        #[cfg(unix)]
        {
            let sock = socket2::SockRef::from(&self.fd);
            let _ = sock.set_linger(Some(std::time::Duration::ZERO));
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }
}
