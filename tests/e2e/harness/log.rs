//! What the daemon logs during a test, captured as text (shared by the end-to-end and the
//! fast tier).

#![allow(dead_code)]

use std::sync::Arc;

/// What the daemon logs while this lives, as the text of its log lines. Captured on the
/// test's own thread: an in-process daemon's handlers run there (`#[tokio::test]` is one
/// thread), work on blocking threads is not seen.
pub struct CapturedLog {
    text: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> LogSink {
        self.clone()
    }
}

impl CapturedLog {
    pub fn start() -> CapturedLog {
        let text = Arc::new(std::sync::Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(LogSink(text.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        CapturedLog {
            text,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// The log line that mentions `needle`; panics with the whole log if none does.
    pub fn line_with(&self, needle: &str) -> String {
        let text = self.text();
        text.lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no log line mentions {needle:?}; the log:\n{text}"))
    }
}
