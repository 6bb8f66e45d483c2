//! stderr, shared by the log and the live block a long phase draws on a
//! terminal (readiness: one line per check, redrawn in place).
//!
//! A log line written while the block is shown erases the block, is
//! written, and the block is drawn again below it, so that the two never
//! garble each other. Off a terminal there is no block: phases log one line
//! per change instead (see `run::readiness::progress`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

/// The lines of the block currently drawn.
static BLOCK: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Replace the block with `lines`, each cut to the terminal's width so that
/// none wraps (a wrapped line would throw off the count to erase).
pub fn show(lines: &[String]) {
    let width = terminal_width().saturating_sub(1).max(20);
    let mut block = BLOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut err = std::io::stderr().lock();
    erase(&mut err, block.len());
    *block = lines
        .iter()
        .map(|line| line.chars().take(width).collect())
        .collect();
    draw(&mut err, &block);
}

/// Take the block off the screen.
pub fn clear() {
    show(&[]);
}

fn erase(out: &mut impl Write, lines: usize) {
    if lines > 0 {
        // Up to the block's first line, then clear to the end of the screen.
        let _ = write!(out, "\x1b[{lines}A\r\x1b[J");
    }
}

fn draw(out: &mut impl Write, block: &[String]) {
    for line in block {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the struct it is given; a
    // zeroed one is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// The log's writer: stderr, around the block.
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::new())
    }
}

/// One log event, written out in one piece when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let block = BLOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut err = std::io::stderr().lock();
        erase(&mut err, block.len());
        let _ = err.write_all(&self.0);
        draw(&mut err, &block);
    }
}
