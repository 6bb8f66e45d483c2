//! Telling systemd (`Type=notify`) how start-up goes: `STATUS=` lines while
//! checking, `READY=1` once, when every check is ready. Only when
//! `NOTIFY_SOCKET` is set; a failure to notify is logged, never fatal (the
//! controller works the same without a service manager).
//!
//! The datagrams go out from a thread of their own: a send to a service
//! manager that does not read (its queue holds ten datagrams) blocks, and
//! must not block the readiness phase. While the thread waits, newer
//! statuses replace older ones; `READY=1` is never dropped.

use std::sync::mpsc;

use sd_notify::NotifyState;

use crate::terminal::clipped;

/// Longest `STATUS=` text sent; systemd shows it in one line of
/// `systemctl status`.
const MAX_STATUS_CHARS: usize = 1024;

enum Message {
    Status(String),
    Ready(String),
}

pub struct Notifier {
    sender: Option<mpsc::Sender<Message>>,
    last_status: Option<String>,
}

impl Notifier {
    /// Enabled when this process was started with `NOTIFY_SOCKET`.
    pub fn from_env() -> Self {
        let sender = std::env::var_os("NOTIFY_SOCKET").and_then(|_| {
            let (sender, receiver) = mpsc::channel();
            std::thread::Builder::new()
                .name("plinth-sd-notify".into())
                .spawn(move || send_all(&receiver))
                .map_err(|error| tracing::warn!("cannot start the sd_notify thread: {error}"))
                .ok()
                .map(|_| sender)
        });
        Self {
            sender,
            last_status: None,
        }
    }

    /// `STATUS=<status>`, if it differs from the last one.
    pub fn status(&mut self, status: &str) {
        let status = clipped(status, MAX_STATUS_CHARS);
        if self.last_status.as_deref() != Some(status.as_str()) {
            self.send(Message::Status(status.clone()));
            self.last_status = Some(status);
        }
    }

    /// `READY=1`, with a last `STATUS=`.
    pub fn ready(&mut self, status: &str) {
        self.send(Message::Ready(clipped(status, MAX_STATUS_CHARS)));
    }

    fn send(&self, message: Message) {
        if let Some(sender) = &self.sender {
            // The thread lives as long as the channel; nothing to report.
            let _ = sender.send(message);
        }
    }
}

/// The thread: send each message, the latest status first when several
/// queued up behind a blocked send.
fn send_all(receiver: &mpsc::Receiver<Message>) {
    while let Ok(first) = receiver.recv() {
        let mut ready = None;
        let mut status = None;
        for message in std::iter::once(first).chain(receiver.try_iter()) {
            match message {
                Message::Status(text) => status = Some(text),
                Message::Ready(text) => ready = Some(text),
            }
        }
        let result = match (&ready, &status) {
            (Some(text), _) => sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(text)]),
            (None, Some(text)) => sd_notify::notify(&[NotifyState::Status(text)]),
            (None, None) => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!("cannot notify the service manager through NOTIFY_SOCKET: {error}");
        }
    }
}
