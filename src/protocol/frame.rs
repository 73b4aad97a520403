//! Length-prefixed frames: a big-endian i32 size, then that many bytes.
//!
//! Check, then read: the size is checked against the limit before anything is allocated, and
//! the body is read into one buffer that the connection reuses, so a frame costs no allocation
//! once the buffer has grown to the connection's usual request size.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

use super::ProtocolError;

/// The size prefix.
pub const FRAME_SIZE_BYTES: usize = 4;
/// The smallest request: api key, api version, correlation id, client id length.
pub const REQUEST_HEADER_BYTES_MIN: usize = 10;
/// The smallest response: a correlation id.
pub const RESPONSE_HEADER_BYTES_MIN: usize = 4;
/// How much a read asks the socket for when no frame size is known yet.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Reads frames from one connection into a reused buffer.
///
/// `buffer[..filled]` holds bytes received; `buffer[filled..]` is initialized space ready for
/// the next read. Keeping that space between reads means each byte of the buffer is zeroed at
/// most once per frame: re-zeroing the unread rest of a large frame before every read, as a
/// plain resize-then-truncate does, cost several times the frame in memset.
pub struct FrameReader {
    buffer: BytesMut,
    filled: usize,
    max_request_bytes: usize,
    frame_bytes_min: usize,
}

impl FrameReader {
    /// A reader of requests that refuses frames above `max_request_bytes`.
    pub fn new(max_request_bytes: usize) -> Self {
        Self {
            buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            filled: 0,
            max_request_bytes,
            frame_bytes_min: REQUEST_HEADER_BYTES_MIN,
        }
    }

    /// A reader of responses (a client's side) that refuses frames above `max_response_bytes`.
    pub fn for_responses(max_response_bytes: usize) -> Self {
        Self {
            frame_bytes_min: RESPONSE_HEADER_BYTES_MIN,
            ..Self::new(max_response_bytes)
        }
    }

    /// The next frame's body, or `None` when the peer closed the connection between frames.
    pub async fn next_frame<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Option<Bytes>, ProtocolError> {
        while self.filled < FRAME_SIZE_BYTES {
            if self.fill(stream, FRAME_SIZE_BYTES).await? == 0 {
                if self.filled == 0 {
                    return Ok(None);
                }
                return Err(ProtocolError::TruncatedFrame {
                    received_bytes: self.filled,
                    size_bytes: FRAME_SIZE_BYTES,
                });
            }
        }
        let mut prefix = [0u8; FRAME_SIZE_BYTES];
        prefix.copy_from_slice(&self.buffer[..FRAME_SIZE_BYTES]);
        let size = i32::from_be_bytes(prefix);
        if size < self.frame_bytes_min as i32 {
            return Err(ProtocolError::FrameTooShort { size_bytes: size });
        }
        let size = size as usize;
        if size > self.max_request_bytes {
            return Err(ProtocolError::FrameTooLarge {
                size_bytes: size as i64,
                limit_bytes: self.max_request_bytes,
            });
        }
        let total = FRAME_SIZE_BYTES + size;
        while self.filled < total {
            if self.fill(stream, total).await? == 0 {
                return Err(ProtocolError::TruncatedFrame {
                    received_bytes: self.filled - FRAME_SIZE_BYTES,
                    size_bytes: size,
                });
            }
        }
        let mut frame = self.buffer.split_to(total);
        self.filled -= total;
        let _ = frame.split_to(FRAME_SIZE_BYTES);
        Ok(Some(frame.freeze()))
    }

    /// Reads once into the buffer, with room for at least enough to reach `target` bytes and
    /// at most a chunk beyond, so small frames that arrive together are read together.
    async fn fill<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        target: usize,
    ) -> Result<usize, ProtocolError> {
        let room = target.saturating_sub(self.filled).max(READ_CHUNK_BYTES);
        if self.buffer.len() < self.filled + room {
            // Zeroes only the newly added bytes. `reserve` inside reclaims the buffer's front
            // once earlier frames are dropped, so steady traffic reuses one allocation.
            self.buffer.resize(self.filled + room, 0);
        }
        let read = stream
            .read(&mut self.buffer[self.filled..])
            .await
            .map_err(|source| ProtocolError::Io {
                operation: "read",
                source,
            })?;
        self.filled += read;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        futures_lite::future::block_on(future)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let body: Vec<u8> = (0..200u8).collect();
        let mut wire = frame(&body);
        wire.extend(frame(&body[..50]));
        let mut reader = FrameReader::new(1024);
        let mut stream = futures_lite::io::Cursor::new(wire);
        assert_eq!(run(reader.next_frame(&mut stream)).unwrap().unwrap(), body);
        assert_eq!(
            run(reader.next_frame(&mut stream)).unwrap().unwrap(),
            body[..50]
        );
        assert!(run(reader.next_frame(&mut stream)).unwrap().is_none());
    }

    /// Hands out at most `step` bytes per read, as a slow socket does.
    struct Trickle {
        data: Vec<u8>,
        position: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buffer: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let count = self
                .step
                .min(buffer.len())
                .min(self.data.len() - self.position);
            let start = self.position;
            buffer[..count].copy_from_slice(&self.data[start..start + count]);
            self.position += count;
            std::task::Poll::Ready(Ok(count))
        }
    }

    #[test]
    fn frames_arriving_in_small_pieces_reassemble_exactly() {
        let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = frame(&large);
        wire.extend(frame(&[9; 12]));
        wire.extend(frame(&large[..70_000]));
        for step in [1, 7, 4096, 100_000] {
            let mut reader = FrameReader::new(1 << 20);
            let mut stream = Trickle {
                data: wire.clone(),
                position: 0,
                step,
            };
            assert_eq!(run(reader.next_frame(&mut stream)).unwrap().unwrap(), large);
            assert_eq!(
                run(reader.next_frame(&mut stream)).unwrap().unwrap(),
                [9; 12][..]
            );
            assert_eq!(
                run(reader.next_frame(&mut stream)).unwrap().unwrap(),
                large[..70_000]
            );
            assert!(run(reader.next_frame(&mut stream)).unwrap().is_none());
        }
    }

    #[test]
    fn bad_sizes_and_truncation_are_errors() {
        let mut reader = FrameReader::new(100);
        let mut stream = futures_lite::io::Cursor::new(frame(&[0; 101]));
        assert!(matches!(
            run(reader.next_frame(&mut stream)),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        let mut reader = FrameReader::new(100);
        let mut stream = futures_lite::io::Cursor::new((-5i32).to_be_bytes().to_vec());
        assert!(matches!(
            run(reader.next_frame(&mut stream)),
            Err(ProtocolError::FrameTooShort { .. })
        ));
        let mut reader = FrameReader::new(100);
        let mut wire = frame(&[1; 50]);
        wire.truncate(30);
        let mut stream = futures_lite::io::Cursor::new(wire);
        assert!(matches!(
            run(reader.next_frame(&mut stream)),
            Err(ProtocolError::TruncatedFrame { .. })
        ));
        let mut reader = FrameReader::new(100);
        let mut stream = futures_lite::io::Cursor::new(vec![0, 0]);
        assert!(matches!(
            run(reader.next_frame(&mut stream)),
            Err(ProtocolError::TruncatedFrame { .. })
        ));
    }
}
