//! When backups run: cron patterns (five fields, UTC) read by `croner`, and the loop that
//! launches each schedule's backup at its times. A schedule records the occurrence it last
//! ran; one whose occurrences passed while Rivetr was down runs once at start, not once per
//! occurrence missed.
//!
//! Wall-clock time comes from a [`Clock`] that advances with tokio's clock, so tests run a
//! day of schedules in no real time with tokio's paused clock.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The longest the loop sleeps without looking again: a wall clock set forward (NTP, a
/// suspended machine) is noticed within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// Parses a five-field cron pattern (minute hour day-of-month month day-of-week) or an
/// alias such as `@daily`.
pub fn parse(pattern: &str) -> Result<Cron, String> {
    let fields = pattern.split_whitespace().count();
    if !pattern.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "`{pattern}` has {fields} fields; a schedule has five: minute hour day-of-month month day-of-week (UTC), such as `0 3 * * *`"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| format!("`{pattern}` is not a cron pattern: {e}"))
}

/// Reads a time stored as RFC 3339.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::from_str(s).ok()
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The wall clock as tokio's clock moves it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: DateTime<Utc>,
    started: tokio::time::Instant,
}

impl Clock {
    /// The system's clock, from now on moved by tokio's.
    pub fn system() -> Clock {
        Clock::starting_at(DateTime::<Utc>::from(SystemTime::now()))
    }

    pub fn starting_at(wall: DateTime<Utc>) -> Clock {
        Clock {
            wall_at_start: wall,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        self.wall_at_start + elapsed
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}

/// One schedule as the loop sees it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: i64,
    pub cron: Cron,
    /// The occurrence last run, or the schedule's creation.
    pub last_run: DateTime<Utc>,
}

impl Planned {
    /// The latest occurrence after the last run and not after `now`: what is due now.
    pub fn due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let latest = self.cron.find_previous_occurrence(&now, true).ok()?;
        (latest > self.last_run).then_some(latest)
    }

    /// The first occurrence after `now`.
    pub fn next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&now, false).ok()
    }
}

/// A schedule's backup to launch: its `occurrence` is recorded as run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub schedule: i64,
    pub occurrence: DateTime<Utc>,
}

/// Launches each schedule's due backups until `stop`: `load` gives the schedules (again
/// after `changed` is notified), `launch` starts one backup and must not wait for it.
pub async fn run<L, F>(
    clock: Clock,
    mut load: L,
    changed: &tokio::sync::Notify,
    mut launch: F,
    stop: tokio_util::sync::CancellationToken,
) where
    L: AsyncFnMut() -> Vec<Planned>,
    F: FnMut(Due),
{
    let mut plan = load().await;
    loop {
        let now = clock.now();
        for planned in &mut plan {
            if let Some(occurrence) = planned.due(now) {
                planned.last_run = occurrence;
                launch(Due {
                    schedule: planned.id,
                    occurrence,
                });
            }
        }
        let wake = plan
            .iter()
            .filter_map(|p| p.next(now))
            .min()
            .map_or(now + LONGEST_SLEEP, |next| next.min(now + LONGEST_SLEEP));
        tokio::select! {
            () = clock.sleep_until(wake) => {}
            () = changed.notified() => plan = load().await,
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn five_fields_are_required_and_errors_say_what_a_schedule_is() {
        assert!(parse("0 3 * * *").is_ok());
        assert!(parse("@daily").is_ok());
        let err = parse("0 0 3 * * *").unwrap_err();
        assert!(err.contains("6 fields") && err.contains("five"), "{err}");
        let err = parse("61 * * * *").unwrap_err();
        assert!(err.contains("61 * * * *"), "{err}");
    }

    #[test]
    fn a_missed_schedule_is_due_once_with_its_latest_occurrence() {
        let p = Planned {
            id: 1,
            cron: parse("0 * * * *").unwrap(),
            last_run: at("2026-12-01T10:00:00Z"),
        };
        assert_eq!(p.due(at("2026-12-01T10:59:00Z")), None);
        // Down from 10:00 to 13:30: three hourly runs were missed; one runs, as of 13:00.
        assert_eq!(
            p.due(at("2026-12-01T13:30:00Z")),
            Some(at("2026-12-01T13:00:00Z"))
        );
        assert_eq!(
            p.next(at("2026-12-01T13:30:00Z")),
            Some(at("2026-12-01T14:00:00Z"))
        );
    }

    /// Runs the loop on tokio's paused clock for `hours`, from `start`, and returns what it
    /// launched.
    async fn launched(plan: Vec<Planned>, start: &str, hours: u64) -> Vec<Due> {
        let clock = Clock::starting_at(at(start));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let changed = tokio::sync::Notify::new();
        let recorder = Arc::clone(&seen);
        let looping = run(
            clock,
            async || plan.clone(),
            &changed,
            move |due| recorder.lock().unwrap().push(due),
            stop.clone(),
        );
        tokio::select! {
            () = looping => panic!("the loop ended by itself"),
            () = tokio::time::sleep(Duration::from_secs(hours * 3600)) => {}
        }
        seen.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn an_hourly_schedule_runs_at_each_hour_for_a_day() {
        let plan = vec![Planned {
            id: 7,
            cron: parse("0 * * * *").unwrap(),
            last_run: at("2026-12-01T00:00:00Z"),
        }];
        let seen = launched(plan, "2026-12-01T00:30:00Z", 24).await;
        assert_eq!(seen.len(), 24, "{seen:?}");
        assert_eq!(seen[0].occurrence, at("2026-12-01T01:00:00Z"));
        assert_eq!(seen[23].occurrence, at("2026-12-02T00:00:00Z"));
        assert!(seen.iter().all(|d| d.schedule == 7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_missed_while_stopped_runs_once_at_start_then_on_time() {
        // Last run two days ago; daily at 03:00; Rivetr starts at 12:00.
        let plan = vec![Planned {
            id: 1,
            cron: parse("0 3 * * *").unwrap(),
            last_run: at("2026-11-29T03:00:00Z"),
        }];
        let seen = launched(plan, "2026-12-01T12:00:00Z", 24).await;
        assert_eq!(
            seen.iter().map(|d| d.occurrence).collect::<Vec<_>>(),
            vec![at("2026-12-01T03:00:00Z"), at("2026-12-02T03:00:00Z")]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_schedules_keep_their_own_times() {
        let plan = vec![
            Planned {
                id: 1,
                cron: parse("*/15 * * * *").unwrap(),
                last_run: at("2026-12-01T00:00:00Z"),
            },
            Planned {
                id: 2,
                cron: parse("30 1 * * *").unwrap(),
                last_run: at("2026-12-01T00:00:00Z"),
            },
        ];
        let seen = launched(plan, "2026-12-01T00:05:00Z", 2).await;
        assert_eq!(seen.iter().filter(|d| d.schedule == 1).count(), 8);
        assert_eq!(
            seen.iter()
                .filter(|d| d.schedule == 2)
                .map(|d| d.occurrence)
                .collect::<Vec<_>>(),
            vec![at("2026-12-01T01:30:00Z")]
        );
    }
}
