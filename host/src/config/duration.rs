//! Go-style durations (`87600h`, `90m`, `1h30m`), the form k0s and kubeadm
//! users write validity periods in.

use std::fmt;
use std::str::FromStr;

/// A whole number of seconds written as Go writes durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration {
    seconds: u64,
}

impl GoDuration {
    pub const fn from_hours(hours: u64) -> Self {
        Self {
            seconds: hours * 3600,
        }
    }

    pub(crate) fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }

    pub(crate) fn as_time(self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.seconds).unwrap_or(i64::MAX))
    }
}

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("`{text}` is not a duration; write it like `8760h`, `90m` or `1h30m`");
        if text.is_empty() {
            return Err(invalid());
        }
        let mut seconds: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(invalid)?;
            if digits == 0 {
                return Err(invalid());
            }
            let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            let unit = rest[digits..].chars().next().ok_or_else(invalid)?;
            let scale = match unit {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(invalid()),
            };
            seconds = amount
                .checked_mul(scale)
                .and_then(|part| seconds.checked_add(part))
                .ok_or_else(invalid)?;
            rest = &rest[digits + 1..];
        }
        if seconds == 0 {
            return Err(format!(
                "`{text}` is zero; a duration here must be positive"
            ));
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hours, rest) = (self.seconds / 3600, self.seconds % 3600);
        let (minutes, seconds) = (rest / 60, rest % 60);
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if seconds > 0 {
            write!(f, "{seconds}s")?;
        }
        Ok(())
    }
}

super::text::serde_via_str!(GoDuration);

#[cfg(test)]
mod tests {
    use super::GoDuration;

    #[test]
    fn parses_and_prints_go_durations() {
        for (text, seconds) in [
            ("8760h", 8760 * 3600),
            ("90m", 5400),
            ("1h30m", 5400),
            ("45s", 45),
        ] {
            let parsed: GoDuration = text.parse().unwrap();
            assert_eq!(parsed.seconds, seconds, "{text}");
        }
        assert_eq!("90m".parse::<GoDuration>().unwrap().to_string(), "1h30m");
    }

    #[test]
    fn rejects_what_go_would_not_read_as_a_validity() {
        for text in ["", "10", "h", "10d", "1h30", "0h", "-1h", "1.5h"] {
            assert!(text.parse::<GoDuration>().is_err(), "{text} was accepted");
        }
    }
}
