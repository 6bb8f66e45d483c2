//! Telling systemd (`Type=notify`) how start-up goes: `STATUS=` lines while
//! checking, `READY=1` once, when every check is ready. Only when
//! `NOTIFY_SOCKET` is set; a failure to notify is logged, never fatal (the
//! controller works the same without a service manager).

use sd_notify::NotifyState;

use super::render::one_line;

/// Longest `STATUS=` text sent; systemd shows it in one line of
/// `systemctl status`.
const MAX_STATUS_CHARS: usize = 1024;

pub struct Notifier {
    enabled: bool,
    last_status: Option<String>,
}

impl Notifier {
    /// Enabled when this process was started with `NOTIFY_SOCKET`.
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            last_status: None,
        }
    }

    /// Send `STATUS=<status>` if it differs from the last one sent.
    pub fn status(&mut self, status: &str) {
        let status = one_line(status, MAX_STATUS_CHARS);
        if self.last_status.as_deref() == Some(status.as_str()) {
            return;
        }
        self.send(&[NotifyState::Status(&status)]);
        self.last_status = Some(status);
    }

    /// `READY=1`, with a last `STATUS=`.
    pub fn ready(&mut self, status: &str) {
        let status = one_line(status, MAX_STATUS_CHARS);
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.last_status = Some(status);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            tracing::warn!("cannot notify the service manager through NOTIFY_SOCKET: {error}");
        }
    }
}
