//! The engines' timestamps: RFC 3339 with nanoseconds, and Go's zero time
//! (`0001-01-01T00:00:00Z`) for "never".

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `None` for an empty string, Go's zero time, or anything before 1970 or unparseable.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let t = SystemTime::from(t);
    (t > UNIX_EPOCH).then_some(t)
}

/// Whole seconds since the epoch, as the logs endpoint wants `since`.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps() {
        let t = parse("2026-11-29T06:56:53.602643053Z").unwrap();
        assert_eq!(unix_seconds(t), 1_795_935_413);
        let offset = parse("2026-11-29T07:56:53.5+01:00").unwrap();
        assert_eq!(unix_seconds(offset), 1_795_935_413);
        assert_eq!(parse("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse(""), None);
    }
}
