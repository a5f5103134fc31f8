//! The echo baseline's I/O shell: one thread, one io_uring, no executor, no allocation per
//! request in the steady state.
//!
//! - one multishot accept on the listener;
//! - per connection, one multishot recv that picks buffers from a provided buffer ring (the
//!   kernel fills whichever buffer is free; we recycle it right after parsing), so one
//!   `io_uring_enter` reaps reads of many connections;
//! - replies are appended to the connection's `out` buffer while a turn's completions are
//!   processed, and each connection gets at most one send per turn (double-buffered: `out`
//!   fills while `sending` is in flight).
//!
//! user_data layout: `generation (32) | slot (24) | op (8)`; the generation makes a completion
//! for a closed and reused slot harmless. A connection is closed only when neither its recv nor
//! a send is in flight, so no completion can refer to a freed buffer.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::framing::{answer, Canned};
use crate::limits::{ECHO_CONNECTIONS_MAX, ECHO_PENDING_SIZE_MAX};

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const BUF_GROUP: u16 = 0;
/// Provided receive buffers (a power of two, at most 32768).
const BUF_COUNT: u16 = 1024;
/// Bytes per provided receive buffer.
const BUF_SIZE: usize = 16 << 10;
/// Submission queue entries.
const RING_ENTRIES: u32 = 4096;

const _: () = assert!(BUF_COUNT.is_power_of_two() && BUF_COUNT <= 32_768);
const _: () = assert!(ECHO_CONNECTIONS_MAX < (1 << 24));

/// The provided buffer ring: `BUF_COUNT` entries in page-aligned memory shared with the kernel,
/// pointing into one contiguous allocation of `BUF_COUNT * BUF_SIZE` bytes.
struct BufRing {
    entries: *mut BufRingEntry,
    entries_len: usize,
    buffers: Vec<u8>,
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<Self> {
        let entries_len = usize::from(BUF_COUNT) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; checked for MAP_FAILED below. mmap memory is page
        // aligned and zeroed, as io_uring_register_buf_ring requires.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut this = Self {
            entries: ptr.cast::<BufRingEntry>(),
            entries_len,
            buffers: vec![0u8; usize::from(BUF_COUNT) * BUF_SIZE],
            tail: 0,
        };
        // SAFETY: `entries` is a live mapping of BUF_COUNT entries that outlives the ring's use
        // (unregistered implicitly when the ring is dropped, which happens before `this`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, BUF_COUNT, BUF_GROUP, 0)?
        };
        for bid in 0..BUF_COUNT {
            this.recycle(bid);
        }
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid`.
    fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * BUF_SIZE;
        &self.buffers[start..start + len.min(BUF_SIZE)]
    }

    /// Hands buffer `bid` back to the kernel.
    fn recycle(&mut self, bid: u16) {
        assert!(bid < BUF_COUNT, "buffer id {bid} out of range");
        let slot = usize::from(self.tail & (BUF_COUNT - 1));
        let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * BUF_SIZE) as u64;
        // SAFETY: slot < BUF_COUNT, inside the mapping; the kernel does not read entries past the
        // published tail, and this one is published only after it is written.
        unsafe {
            let entry = &mut *self.entries.add(slot);
            entry.set_addr(addr);
            entry.set_len(BUF_SIZE as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lives in entry 0 of the mapping; AtomicU16 has u16's layout;
        // release ordering publishes the entry written above.
        unsafe {
            let tail = BufRingEntry::tail(self.entries)
                .cast_mut()
                .cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.entries.cast(), self.entries_len) };
    }
}

struct Conn {
    fd: RawFd,
    generation: u32,
    pending: Vec<u8>,
    out: Vec<u8>,
    sending: Vec<u8>,
    sent: usize,
    send_in_flight: bool,
    recv_active: bool,
    closing: bool,
}

fn user_data(generation: u32, slot: usize, op: u64) -> u64 {
    (u64::from(generation) << 32) | ((slot as u64) << 8) | op
}

struct Server {
    ring: IoUring,
    canned: Canned,
    listener_fd: RawFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    generation: u32,
    dirty: Vec<usize>,
}

impl Server {
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to (a connection's `sending`) stays alive and
            // untouched until its completion arrives.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        self.push(
            opcode::AcceptMulti::new(Fd(self.listener_fd))
                .build()
                .user_data(OP_ACCEPT),
        )
    }

    fn arm_recv(&mut self, slot: usize) -> io::Result<()> {
        let Some(conn) = self.conns[slot].as_mut() else {
            return Ok(());
        };
        conn.recv_active = true;
        let entry = opcode::RecvMulti::new(Fd(conn.fd), BUF_GROUP)
            .build()
            .user_data(user_data(conn.generation, slot, OP_RECV));
        self.push(entry)
    }

    fn on_accept(&mut self, result: i32, flags: u32) -> io::Result<()> {
        if result >= 0 {
            let fd = result;
            let one: libc::c_int = 1;
            // SAFETY: fd is a socket we own; the option value is a c_int of the given size.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    4,
                );
            }
            let slot = match self.free.pop() {
                Some(s) => s,
                None if self.conns.len() < ECHO_CONNECTIONS_MAX => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
                None => {
                    // SAFETY: closing the fd we were just given.
                    unsafe { libc::close(fd) };
                    return if cqueue::more(flags) {
                        Ok(())
                    } else {
                        self.arm_accept()
                    };
                }
            };
            self.generation = self.generation.wrapping_add(1);
            self.conns[slot] = Some(Conn {
                fd,
                generation: self.generation,
                pending: Vec::new(),
                out: Vec::with_capacity(BUF_SIZE),
                sending: Vec::with_capacity(BUF_SIZE),
                sent: 0,
                send_in_flight: false,
                recv_active: false,
                closing: false,
            });
            self.arm_recv(slot)?;
        }
        if !cqueue::more(flags) {
            self.arm_accept()?;
        }
        Ok(())
    }

    fn conn_for(&mut self, ud: u64) -> Option<(usize, &mut Conn)> {
        conn_in(&mut self.conns, ud)
    }

    fn on_recv(&mut self, ud: u64, result: i32, flags: u32, bufs: &mut BufRing) -> io::Result<()> {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let canned = &self.canned;
        let Some((slot, conn)) = conn_in(&mut self.conns, ud) else {
            if let Some(bid) = bid {
                bufs.recycle(bid);
            }
            return Ok(());
        };
        if result > 0 {
            if let Some(bid) = bid {
                let data = bufs.buffer(bid, result as usize);
                let outcome = if conn.pending.is_empty() {
                    answer(canned, data, &mut conn.out)
                        .map(|n| conn.pending.extend_from_slice(&data[n..]))
                } else {
                    conn.pending.extend_from_slice(data);
                    answer(canned, &conn.pending, &mut conn.out).map(|n| {
                        conn.pending.drain(..n);
                    })
                };
                bufs.recycle(bid);
                if outcome.is_err() || conn.pending.len() > ECHO_PENDING_SIZE_MAX {
                    start_close(conn);
                }
            }
        } else if result == 0 || result != -libc::ENOBUFS {
            // End of stream or a socket error: the multishot recv ends with this completion.
            conn.closing = true;
        }
        if !conn.out.is_empty() {
            self.dirty.push(slot);
        }
        if !more {
            let conn = self.conns[slot].as_mut().map(|c| {
                c.recv_active = false;
                c.closing
            });
            match conn {
                Some(false) => self.arm_recv(slot)?,
                Some(true) => self.dirty.push(slot),
                None => {}
            }
        }
        Ok(())
    }

    fn on_send(&mut self, ud: u64, result: i32) -> io::Result<()> {
        let Some((slot, conn)) = self.conn_for(ud) else {
            return Ok(());
        };
        conn.send_in_flight = false;
        if result < 0 {
            start_close(conn);
        } else {
            conn.sent += result as usize;
            if conn.sent >= conn.sending.len() {
                conn.sending.clear();
                conn.sent = 0;
            }
        }
        self.dirty.push(slot);
        Ok(())
    }

    /// One send per dirty connection; closes connections with nothing in flight.
    fn flush_dirty(&mut self) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &slot in &dirty {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            if conn.send_in_flight {
                continue;
            }
            if conn.closing {
                if !conn.recv_active {
                    // SAFETY: nothing is in flight for this fd any more.
                    unsafe { libc::close(conn.fd) };
                    self.conns[slot] = None;
                    self.free.push(slot);
                }
                continue;
            }
            if conn.sending.is_empty() && !conn.out.is_empty() {
                std::mem::swap(&mut conn.sending, &mut conn.out);
            }
            if conn.sent < conn.sending.len() {
                let rest = &conn.sending[conn.sent..];
                let entry = opcode::Send::new(Fd(conn.fd), rest.as_ptr(), rest.len() as u32)
                    .build()
                    .user_data(user_data(conn.generation, slot, OP_SEND));
                conn.send_in_flight = true;
                self.push(entry)?;
            }
        }
        dirty.clear();
        self.dirty = dirty;
        Ok(())
    }
}

/// The live connection a completion refers to (same slot and generation).
fn conn_in(conns: &mut [Option<Conn>], ud: u64) -> Option<(usize, &mut Conn)> {
    let slot = ((ud >> 8) & 0xff_ffff) as usize;
    let generation = (ud >> 32) as u32;
    match conns.get_mut(slot) {
        Some(Some(c)) if c.generation == generation => Some((slot, c)),
        _ => None,
    }
}

/// Shuts the socket down so the armed recv completes; the fd is closed once nothing is in flight.
fn start_close(conn: &mut Conn) {
    conn.closing = true;
    // SAFETY: a socket we own; shutdown makes pending operations on it complete.
    unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) };
}

/// Serves `listener` until `stop` is set (checked at least every 100 ms).
pub fn serve(listener: TcpListener, canned: Canned, stop: Arc<AtomicBool>) -> io::Result<()> {
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(RING_ENTRIES)?;
    let mut bufs = BufRing::new(&ring)?;
    let mut server = Server {
        ring,
        canned,
        listener_fd: listener.as_raw_fd(),
        conns: Vec::new(),
        free: Vec::new(),
        generation: 0,
        dirty: Vec::new(),
    };
    server.arm_accept()?;
    let mut completions: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize);
    let timeout = Timespec::from(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        let args = SubmitArgs::new().timespec(&timeout);
        match server.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::ETIME)
                    || e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        completions.clear();
        completions.extend(
            server
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, result, flags) in &completions {
            match ud & 0xff {
                OP_ACCEPT => server.on_accept(result, flags)?,
                OP_RECV => server.on_recv(ud, result, flags, &mut bufs)?,
                OP_SEND => server.on_send(ud, result)?,
                _ => {}
            }
        }
        server.flush_dirty()?;
    }
    for conn in server.conns.iter().flatten() {
        // SAFETY: closing fds we own at shutdown.
        unsafe { libc::close(conn.fd) };
    }
    drop(server);
    drop(bufs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::framing::Protocol;
    use crate::resp::encode_command;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[test]
    fn echo_server_answers_pipelined_requests_on_many_connections_and_drops_garbage() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
        let addr = listener.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(listener, Canned::new(Protocol::Resp, 100), stop))
        };
        let mut request = Vec::new();
        for _ in 0..50 {
            encode_command(&[b"GET", b"key:000000000001"], &mut request);
            encode_command(&[b"SET", b"key:000000000001", &[b'x'; 100]], &mut request);
        }
        let want_len = 50 * (108 + 5);
        let mut clients: Vec<TcpStream> = (0..8)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        for round in 0..3 {
            for c in &mut clients {
                c.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                // Split the batch mid-request to exercise partial frames.
                c.write_all(&request[..request.len() / 2 + 3])
                    .expect("write");
                c.write_all(&request[request.len() / 2 + 3..])
                    .expect("write");
            }
            for c in &mut clients {
                let mut got = vec![0u8; want_len];
                c.read_exact(&mut got).expect("all replies arrive");
                assert!(got.starts_with(b"$100\r\nvvvv"), "round {round}");
                assert!(got.ends_with(b"+OK\r\n"), "round {round}");
            }
        }
        let mut bad = TcpStream::connect(addr).expect("connect");
        bad.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        bad.write_all(b"!!garbage\r\n").expect("write");
        let mut buf = [0u8; 16];
        assert_eq!(
            bad.read(&mut buf).expect("closed cleanly"),
            0,
            "garbage closes the connection"
        );
        stop.store(true, Ordering::Relaxed);
        server
            .join()
            .expect("server thread")
            .expect("server ran without error");
    }
}
