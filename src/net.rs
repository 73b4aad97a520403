//! Splitting a glommio `TcpStream` into a read half and a write half, so that one task reads
//! requests (or responses) while another writes, on the same thread.
//!
//! Both halves hold the stream in an `Rc<RefCell<_>>` and borrow it only inside each poll,
//! never across an await: polls of tasks on one thread never overlap, so the borrows never
//! clash. glommio keeps separate read and write readiness sources, so a pending read and a
//! pending write coexist.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// The read half.
pub struct ReadHalf(Rc<RefCell<TcpStream>>);
/// The write half.
pub struct WriteHalf(Rc<RefCell<TcpStream>>);

/// Splits `stream`.
pub fn split(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    let shared = Rc::new(RefCell::new(stream));
    (ReadHalf(shared.clone()), WriteHalf(shared))
}

impl WriteHalf {
    /// Shuts both directions down, which wakes a read blocked on the other half. Safe to call
    /// at any time, including from a poll of the other half's task.
    pub fn shutdown_both(&self) {
        if let Ok(stream) = self.0.try_borrow() {
            // SAFETY: shutdown(2) on a descriptor the stream owns and keeps open.
            unsafe {
                libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
    }

    /// Another handle to the same write half.
    pub fn share(&self) -> WriteHalf {
        WriteHalf(self.0.clone())
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(context, buffer)
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(context)
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(context)
    }
}
