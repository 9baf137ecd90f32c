//! Packet captures attached to hosts and links.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use crate::packet::Packet;
use crate::pcap::PcapWriter;

/// Identifies a capture started with [`Sim::capture_host`](crate::Sim::capture_host) or
/// [`Sim::capture_link`](crate::Sim::capture_link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaptureId(pub(crate) usize);

/// Where a capture's pcap bytes go.
pub struct CaptureSink(Sink);

enum Sink {
    Memory(Vec<u8>),
    Writer(Box<dyn Write>),
}

impl CaptureSink {
    /// Collect the capture in memory; read it with
    /// [`Sim::capture_bytes`](crate::Sim::capture_bytes) or
    /// [`Sim::finish_capture`](crate::Sim::finish_capture).
    #[must_use]
    pub fn memory() -> Self {
        CaptureSink(Sink::Memory(Vec::new()))
    }

    /// Stream the capture to `writer` (a file, say).
    #[must_use]
    pub fn writer(writer: impl Write + 'static) -> Self {
        CaptureSink(Sink::Writer(Box::new(writer)))
    }
}

impl fmt::Debug for CaptureSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Sink::Memory(v) => write!(f, "CaptureSink::Memory({} bytes)", v.len()),
            Sink::Writer(_) => f.write_str("CaptureSink::Writer"),
        }
    }
}

impl Write for CaptureSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Sink::Memory(v) => v.write(buf),
            Sink::Writer(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Sink::Memory(_) => Ok(()),
            Sink::Writer(w) => w.flush(),
        }
    }
}

/// What a capture listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tap {
    /// Everything a host sends (when sent) and receives (when delivered).
    Host(usize),
    /// Everything that comes out of either end of a link (when it comes out).
    Link(usize),
}

/// One running capture. The first write error stops it and is kept for `finish`.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) tap: Tap,
    writer: Option<PcapWriter<CaptureSink>>,
    error: Option<io::Error>,
}

impl Capture {
    pub(crate) fn new(tap: Tap, sink: CaptureSink) -> Self {
        match PcapWriter::new(sink) {
            Ok(w) => Capture {
                tap,
                writer: Some(w),
                error: None,
            },
            Err(e) => Capture {
                tap,
                writer: None,
                error: Some(e),
            },
        }
    }

    pub(crate) fn record(&mut self, since_epoch: Duration, packet: &Packet) {
        let Some(w) = &mut self.writer else { return };
        if let Err(e) = w.write_packet(since_epoch, packet) {
            self.writer = None;
            self.error = Some(e);
        }
    }

    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match &self.writer.as_ref()?.get_ref().0 {
            Sink::Memory(v) => Some(v),
            Sink::Writer(_) => None,
        }
    }

    /// Flush and close: the bytes for a memory capture, `None` for a writer.
    pub(crate) fn finish(self) -> io::Result<Option<Vec<u8>>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(mut w) = self.writer else {
            return Ok(None);
        };
        w.flush()?;
        match w.into_inner().0 {
            Sink::Memory(v) => Ok(Some(v)),
            Sink::Writer(_) => Ok(None),
        }
    }
}
