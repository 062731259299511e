//! Who is speaking in a class, from the RFC 6464 audio level each classroom's microphone
//! packets carry (no audio is decoded).
//!
//! Sans-IO: [`ActiveSpeaker::observe`] takes a level and its arrival time, [`ActiveSpeaker::poll`]
//! says when the loudest classroom changed. Levels are smoothed with an exponential moving average
//! (so a cough or a single loud packet does not win), a classroom must be louder than
//! [`ACTIVE_LEVEL_DBOV`] to speak at all, and a new speaker takes over only when it is
//! [`SWITCH_MARGIN_DB`] louder than the current one or the current one fell quiet (hysteresis).
//! Decisions are made every [`EVALUATE_EVERY`] at most, so a class hears a few updates a second
//! at most. The same shape as LiveKit's `audiolevel` and mediasoup's `ActiveSpeakerObserver`,
//! smaller.

use std::time::{Duration, Instant};

use crate::ids::ClassroomId;

/// A classroom quieter than this (in -dBov, RFC 6464: 0 is loudest, 127 silence) is not speaking.
/// Speech into a browser microphone measures around -20 to -40 dBov; a quiet room -60 or lower.
pub const ACTIVE_LEVEL_DBOV: u8 = 50;
/// How much louder (dB) another classroom must be to take over from the current speaker.
pub const SWITCH_MARGIN_DB: f32 = 6.0;
/// How often the speaker is decided (and so the most often it changes).
pub const EVALUATE_EVERY: Duration = Duration::from_millis(200);
/// The smoothing time constant: a steady level is reached to 63 % after this long.
const SMOOTHING: Duration = Duration::from_millis(150);
/// A classroom whose microphone sent nothing for this long (DTX in silence, or gone) is quiet.
const STALE_AFTER: Duration = Duration::from_millis(500);

struct Level {
    classroom: ClassroomId,
    /// Smoothed loudness in dB above silence (127 − level): larger is louder.
    loudness: f32,
    at: Instant,
}

/// The active speaker of one class.
#[derive(Default)]
pub struct ActiveSpeaker {
    levels: Vec<Level>,
    current: Option<ClassroomId>,
    next_evaluation: Option<Instant>,
}

impl ActiveSpeaker {
    /// One audio packet of `classroom` carried this level (-dBov, 0..=127).
    pub fn observe(&mut self, now: Instant, classroom: &ClassroomId, level_dbov: u8) {
        let sample = f32::from(127 - level_dbov.min(127));
        match self.levels.iter_mut().find(|l| &l.classroom == classroom) {
            Some(l) => {
                let dt = now.saturating_duration_since(l.at).as_secs_f32();
                let alpha = 1.0 - (-dt / SMOOTHING.as_secs_f32()).exp();
                l.loudness += (sample - l.loudness) * alpha;
                l.at = now;
            }
            None => self.levels.push(Level {
                classroom: classroom.clone(),
                // Start from silence: one packet is not yet speech.
                loudness: 0.0,
                at: now,
            }),
        }
        self.next_evaluation.get_or_insert(now + EVALUATE_EVERY);
    }

    /// The classroom's microphone ended or it left: it no longer speaks (decided at the next
    /// [`ActiveSpeaker::poll`]).
    pub fn forget(&mut self, classroom: &ClassroomId) {
        let Some(at) = self.levels.iter().position(|l| &l.classroom == classroom) else {
            return;
        };
        let last = self.levels.swap_remove(at).at;
        if self.current.as_ref() == Some(classroom) {
            self.next_evaluation = Some(self.next_evaluation.map_or(last, |n| n.min(last)));
        }
    }

    /// When [`ActiveSpeaker::poll`] should be called next, if anything may change.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_evaluation
    }

    /// Decide, if due: `Some(new speaker)` when it changed (`Some(None)`: nobody speaks now).
    pub fn poll(&mut self, now: Instant) -> Option<Option<ClassroomId>> {
        if self.next_evaluation.is_none_or(|at| now < at) {
            return None;
        }
        let threshold = f32::from(127 - ACTIVE_LEVEL_DBOV);
        let loudness = |l: &Level| {
            if now.saturating_duration_since(l.at) > STALE_AFTER {
                0.0
            } else {
                l.loudness
            }
        };
        let current = self
            .current
            .as_ref()
            .and_then(|c| self.levels.iter().find(|l| &l.classroom == c))
            .map(loudness)
            .filter(|&v| v >= threshold);
        let loudest = self
            .levels
            .iter()
            .map(|l| (l, loudness(l)))
            .filter(|&(_, v)| v >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let next = match (current, loudest) {
            (Some(cur), Some((_, v))) if v < cur + SWITCH_MARGIN_DB => self.current.clone(),
            (_, Some((l, _))) => Some(l.classroom.clone()),
            (_, None) => None,
        };
        // Keep evaluating while someone speaks or may start to; rest when all is quiet.
        let active = self.levels.iter().any(|l| loudness(l) > 0.5);
        self.next_evaluation = (active || next.is_some()).then_some(now + EVALUATE_EVERY);
        if next == self.current {
            return None;
        }
        self.current = next.clone();
        Some(next)
    }

    /// The classroom speaking now, as last decided.
    pub fn current(&self) -> Option<&ClassroomId> {
        self.current.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classrooms whose microphones send a packet every 20 ms at these levels (-dBov; `None`:
    /// the microphone sends nothing), for `duration` of fake time; returns every change with
    /// the time since the start it was decided at.
    fn run(
        speaker: &mut ActiveSpeaker,
        start: Instant,
        from: Duration,
        duration: Duration,
        levels: &[(&ClassroomId, Option<u8>)],
    ) -> Vec<(Duration, Option<ClassroomId>)> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < from + duration {
            let now = start + t;
            for (room, level) in levels {
                if let Some(level) = level {
                    speaker.observe(now, room, *level);
                }
            }
            if let Some(change) = speaker.poll(now) {
                changes.push((t, change));
            }
            t += Duration::from_millis(20);
        }
        changes
    }

    fn ids() -> (ClassroomId, ClassroomId) {
        (ClassroomId::from("loud"), ClassroomId::from("silent"))
    }

    #[test]
    fn the_loud_classroom_speaks_within_500_ms_and_the_silent_one_never_does() {
        let (loud, silent) = ids();
        let mut s = ActiveSpeaker::default();
        let start = Instant::now();
        let changes = run(
            &mut s,
            start,
            Duration::ZERO,
            Duration::from_secs(5),
            &[(&loud, Some(20)), (&silent, Some(127))],
        );
        assert_eq!(changes.len(), 1, "one decision, no flapping: {changes:?}");
        let (at, who) = &changes[0];
        assert_eq!(who.as_ref(), Some(&loud));
        assert!(*at <= Duration::from_millis(500), "decided after {at:?}");
    }

    #[test]
    fn a_quiet_room_murmur_is_not_speech() {
        let (_, silent) = ids();
        let mut s = ActiveSpeaker::default();
        let changes = run(
            &mut s,
            Instant::now(),
            Duration::ZERO,
            Duration::from_secs(3),
            &[(&silent, Some(65))],
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_slightly_louder_room_does_not_take_over_but_a_much_louder_one_does() {
        let (a, b) = ids();
        let mut s = ActiveSpeaker::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let first = run(&mut s, start, Duration::ZERO, second, &[(&a, Some(30))]);
        assert_eq!(first.last().and_then(|c| c.1.clone()), Some(a.clone()));
        // B 3 dB louder: within the margin, A keeps the floor.
        let close = run(
            &mut s,
            start,
            second,
            second,
            &[(&a, Some(30)), (&b, Some(27))],
        );
        assert!(close.is_empty(), "{close:?}");
        // B 15 dB louder: B takes over, once.
        let louder = run(
            &mut s,
            start,
            2 * second,
            second,
            &[(&a, Some(30)), (&b, Some(15))],
        );
        assert_eq!(louder.len(), 1, "{louder:?}");
        assert_eq!(louder[0].1.as_ref(), Some(&b));
    }

    #[test]
    fn a_speaker_whose_microphone_goes_quiet_or_stops_sending_stops_speaking() {
        let (a, _) = ids();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        for after in [Some(127), None] {
            let mut s = ActiveSpeaker::default();
            run(&mut s, start, Duration::ZERO, second, &[(&a, Some(25))]);
            assert_eq!(s.current(), Some(&a));
            let quiet = run(&mut s, start, second, second, &[(&a, after)]);
            assert_eq!(quiet.len(), 1, "{quiet:?}");
            assert_eq!(quiet[0].1, None);
            assert!(quiet[0].0 - second <= Duration::from_millis(800));
        }
    }

    #[test]
    fn a_speaker_whose_microphone_ends_stops_speaking_at_the_next_decision() {
        let (a, _) = ids();
        let start = Instant::now();
        let mut s = ActiveSpeaker::default();
        run(
            &mut s,
            start,
            Duration::ZERO,
            Duration::from_secs(1),
            &[(&a, Some(25))],
        );
        assert_eq!(s.current(), Some(&a));
        s.forget(&a);
        let at = s.poll_timeout().expect("a decision is due");
        assert_eq!(s.poll(at), Some(None));
        assert_eq!(s.poll_timeout(), None, "nothing left to decide");
    }

    #[test]
    fn changes_come_at_most_five_times_a_second() {
        let (a, b) = ids();
        let mut s = ActiveSpeaker::default();
        let start = Instant::now();
        let mut changes = Vec::new();
        // A and B alternate being loud every 40 ms: nobody should get more than a few updates.
        for i in 0..100u32 {
            let t = Duration::from_millis(u64::from(i) * 40);
            let (la, lb) = if i % 2 == 0 { (10, 90) } else { (90, 10) };
            changes.extend(run(
                &mut s,
                start,
                t,
                Duration::from_millis(40),
                &[(&a, Some(la)), (&b, Some(lb))],
            ));
        }
        assert!(changes.len() <= 4 * 5, "{} changes in 4 s", changes.len());
    }
}
