//! Polls of one class: the teacher asks, every remote classroom votes as one voter, pupils vote
//! from their own devices through a pupil voting link (a vote-only role).
//!
//! One vote per voter and poll, changeable while the poll is open. A poll closes when the teacher
//! closes it or its timer runs out; the teacher then publishes the result to all screens.
//! Polls are anonymous by default: then voters' names are not even kept (a vote keeps only the
//! voter id that makes it one per voter). Whether a poll is anonymous is fixed when it starts.
//!
//! Time is wall-clock ([`SystemTime`], stored as Unix milliseconds) because a poll's deadline must
//! survive a server restart. The lead calls [`Polls::tick`] (e.g. every second) to close polls
//! whose timer ran out; a vote after the deadline is refused even before that tick.
//!
//! Durability: a vote is [`Polls::prepare_vote`]d, stored, then [`Polls::commit_vote`]d (or both
//! at once with [`Polls::vote`]). `start`, `close`, `publish` and `tick` change memory first and
//! return the record to store; if storing fails, reload with `PollStore::load_polls`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::board::Author;

/// Limits of polls. Every field is a named setting (`--poll-*` flags in the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollLimits {
    /// Options of a single or multiple choice poll (at least 2). Default 10.
    pub max_options: usize,
    /// Characters in a question. Default 500.
    pub max_question_chars: usize,
    /// Characters in one option. Default 200.
    pub max_option_chars: usize,
    /// Longest timer. Default 3600 s.
    pub max_timer_secs: u32,
    /// Polls per class. Default 200.
    pub max_polls_per_class: usize,
    /// Characters of a voter's display name kept (longer names are cut). Default 100.
    pub max_name_chars: usize,
}

impl Default for PollLimits {
    fn default() -> Self {
        Self {
            max_options: 10,
            max_question_chars: 500,
            max_option_chars: 200,
            max_timer_secs: 3600,
            max_polls_per_class: 200,
            max_name_chars: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// Exactly one of the options.
    Single,
    /// One or more distinct options.
    Multiple,
    /// Options `["Yes", "No"]` unless two other labels are given (e.g. translated).
    YesNo,
    /// Options `["A", "B", "C", "D"]` unless four other labels are given.
    QuickAbcd,
}

/// What the teacher sends to start a poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollSpec {
    pub question: String,
    pub kind: PollKind,
    #[serde(default)]
    pub options: Vec<String>,
    /// Default `true`: results never show who voted what.
    #[serde(default = "yes")]
    pub anonymous: bool,
    #[serde(default)]
    pub timer_secs: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollState {
    Open,
    Closed,
    /// Closed, and the result is shown on all screens.
    Published,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// Per class, from 1.
    pub poll_id: u64,
    pub question: String,
    pub kind: PollKind,
    pub options: Vec<String>,
    pub anonymous: bool,
    pub timer_secs: Option<u32>,
    pub state: PollState,
    pub started_at_ms: u64,
    /// `started_at_ms + timer`, when there is a timer.
    pub closes_at_ms: Option<u64>,
}

impl Poll {
    /// Open and its deadline (if any) not yet reached.
    pub fn accepts_votes_at(&self, now: SystemTime) -> bool {
        self.state == PollState::Open && self.closes_at_ms.is_none_or(|c| unix_ms(now) < c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoterKind {
    /// A remote classroom voting as one voter.
    Classroom,
    /// A pupil voting from their own device (pupil voting link).
    Pupil,
}

/// Who votes. `voter_id` must be unique in the class across kinds (e.g. the classroom id, or a
/// pupil id from the voting link token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    pub voter_id: String,
    pub display_name: String,
    pub kind: VoterKind,
}

/// A stored vote. `display_name` is `None` for anonymous polls (it is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub poll_id: u64,
    pub voter_id: String,
    pub kind: VoterKind,
    pub display_name: Option<String>,
    /// Option indexes, sorted, distinct.
    pub choices: Vec<u32>,
    pub at_ms: u64,
}

/// One named voter in the results of a poll that is not anonymous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterChoice {
    pub display_name: String,
    pub kind: VoterKind,
    pub choices: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollResults {
    pub poll: Poll,
    /// Votes per option (a multiple-choice voter counts once for each option chosen).
    pub counts: Vec<u32>,
    /// How many voters voted.
    pub voters_total: u32,
    /// Who chose what; `None` for anonymous polls.
    pub voters: Option<Vec<VoterChoice>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("no poll {0}")]
    NotFound(u64),
    #[error("the poll is closed")]
    Closed,
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("poll {0} is still open; close it first")]
    AlreadyOpen(u64),
    #[error("a class may have at most {limit} polls")]
    LimitPolls { limit: usize },
}

impl PollError {
    pub fn code(&self) -> &'static str {
        match self {
            PollError::Forbidden(_) => "forbidden",
            PollError::NotFound(_) => "not_found",
            PollError::Closed => "closed",
            PollError::Invalid(_) => "invalid",
            PollError::AlreadyOpen(_) => "already_open",
            PollError::LimitPolls { .. } => "limit_polls",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    poll: Poll,
    votes: BTreeMap<String, Vote>,
}

/// All polls of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct Polls {
    limits: PollLimits,
    polls: BTreeMap<u64, Entry>,
}

impl Polls {
    pub fn new(limits: PollLimits) -> Self {
        Self {
            limits,
            polls: BTreeMap::new(),
        }
    }

    /// Rebuild from stored records (votes of unknown polls are ignored).
    pub fn from_parts(limits: PollLimits, polls: Vec<Poll>, votes: Vec<Vote>) -> Self {
        let mut this = Self::new(limits);
        for poll in polls {
            let entry = Entry {
                poll,
                votes: BTreeMap::new(),
            };
            this.polls.insert(entry.poll.poll_id, entry);
        }
        for vote in votes {
            if let Some(entry) = this.polls.get_mut(&vote.poll_id) {
                entry.votes.insert(vote.voter_id.clone(), vote);
            }
        }
        this
    }

    pub fn limits(&self) -> &PollLimits {
        &self.limits
    }

    pub fn get(&self, poll_id: u64) -> Option<&Poll> {
        self.polls.get(&poll_id).map(|e| &e.poll)
    }

    /// All polls, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &Poll> {
        self.polls.values().map(|e| &e.poll)
    }

    /// The open poll, if any (there is at most one).
    pub fn open_poll(&self) -> Option<&Poll> {
        self.all().find(|p| p.state == PollState::Open)
    }

    /// A voter's current vote in a poll (e.g. to show a reconnecting pupil what they chose).
    pub fn vote_of(&self, poll_id: u64, voter_id: &str) -> Option<&Vote> {
        self.polls.get(&poll_id)?.votes.get(voter_id)
    }

    /// All votes of a poll (for storing or auditing), by voter id.
    pub fn votes(&self, poll_id: u64) -> impl Iterator<Item = &Vote> {
        self.polls
            .get(&poll_id)
            .into_iter()
            .flat_map(|e| e.votes.values())
    }

    /// Teacher: start a poll. Only one poll is open at a time.
    pub fn start(
        &mut self,
        teacher: &Author,
        spec: PollSpec,
        now: SystemTime,
    ) -> Result<Poll, PollError> {
        if !teacher.is_teacher {
            return Err(PollError::Forbidden("only the teacher may start a poll"));
        }
        if let Some(open) = self.open_poll() {
            return Err(PollError::AlreadyOpen(open.poll_id));
        }
        let limits = &self.limits;
        if self.polls.len() >= limits.max_polls_per_class {
            return Err(PollError::LimitPolls {
                limit: limits.max_polls_per_class,
            });
        }
        let question = spec.question.trim().to_string();
        if question.is_empty() || question.chars().count() > limits.max_question_chars {
            return Err(PollError::Invalid(format!(
                "the question must have 1..={} characters",
                limits.max_question_chars
            )));
        }
        let defaults: &[&str] = match spec.kind {
            PollKind::YesNo => &["Yes", "No"],
            PollKind::QuickAbcd => &["A", "B", "C", "D"],
            PollKind::Single | PollKind::Multiple => &[],
        };
        let options: Vec<String> = if spec.options.is_empty() {
            defaults.iter().map(|s| s.to_string()).collect()
        } else {
            spec.options.iter().map(|o| o.trim().to_string()).collect()
        };
        let (min, max) = match spec.kind {
            PollKind::YesNo => (2, 2),
            PollKind::QuickAbcd => (4, 4),
            PollKind::Single | PollKind::Multiple => (2, limits.max_options),
        };
        if options.len() < min || options.len() > max {
            return Err(PollError::Invalid(format!(
                "this kind of poll needs {min}..={max} options"
            )));
        }
        for (i, o) in options.iter().enumerate() {
            if o.is_empty() || o.chars().count() > limits.max_option_chars {
                return Err(PollError::Invalid(format!(
                    "an option must have 1..={} characters",
                    limits.max_option_chars
                )));
            }
            if options[..i].contains(o) {
                return Err(PollError::Invalid(format!("option {o:?} is there twice")));
            }
        }
        if let Some(t) = spec.timer_secs
            && (t == 0 || t > limits.max_timer_secs)
        {
            return Err(PollError::Invalid(format!(
                "the timer must be 1..={} seconds",
                limits.max_timer_secs
            )));
        }
        let started_at_ms = unix_ms(now);
        let poll = Poll {
            poll_id: self.polls.keys().next_back().map_or(1, |id| id + 1),
            question,
            kind: spec.kind,
            options,
            anonymous: spec.anonymous,
            timer_secs: spec.timer_secs,
            state: PollState::Open,
            started_at_ms,
            closes_at_ms: spec.timer_secs.map(|t| started_at_ms + u64::from(t) * 1000),
        };
        let entry = Entry {
            poll: poll.clone(),
            votes: BTreeMap::new(),
        };
        self.polls.insert(poll.poll_id, entry);
        Ok(poll)
    }

    /// Check a vote without recording it; returns the record to store and then commit.
    pub fn prepare_vote(
        &self,
        voter: &Voter,
        poll_id: u64,
        choices: &[u32],
        now: SystemTime,
    ) -> Result<Vote, PollError> {
        let entry = self
            .polls
            .get(&poll_id)
            .ok_or(PollError::NotFound(poll_id))?;
        let poll = &entry.poll;
        if !poll.accepts_votes_at(now) {
            return Err(PollError::Closed);
        }
        if voter.voter_id.is_empty() || voter.voter_id.len() > 128 {
            return Err(PollError::Invalid("bad voter id".into()));
        }
        let mut sorted = choices.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != choices.len() {
            return Err(PollError::Invalid("a choice is there twice".into()));
        }
        if let Some(bad) = sorted.iter().find(|&&c| c as usize >= poll.options.len()) {
            return Err(PollError::Invalid(format!("there is no option {bad}")));
        }
        match (poll.kind, sorted.len()) {
            (PollKind::Multiple, 0) => {
                return Err(PollError::Invalid("choose at least one option".into()));
            }
            (PollKind::Multiple, _) | (_, 1) => {}
            _ => return Err(PollError::Invalid("choose exactly one option".into())),
        }
        let display_name = (!poll.anonymous).then(|| {
            voter
                .display_name
                .trim()
                .chars()
                .take(self.limits.max_name_chars)
                .collect()
        });
        Ok(Vote {
            poll_id,
            voter_id: voter.voter_id.clone(),
            kind: voter.kind,
            display_name,
            choices: sorted,
            at_ms: unix_ms(now),
        })
    }

    /// Record a prepared vote (replacing the voter's earlier vote in that poll).
    pub fn commit_vote(&mut self, vote: Vote) {
        if let Some(entry) = self.polls.get_mut(&vote.poll_id) {
            entry.votes.insert(vote.voter_id.clone(), vote);
        }
    }

    /// Vote, or change one's vote, while the poll is open.
    pub fn vote(
        &mut self,
        voter: &Voter,
        poll_id: u64,
        choices: &[u32],
        now: SystemTime,
    ) -> Result<Vote, PollError> {
        let vote = self.prepare_vote(voter, poll_id, choices, now)?;
        self.commit_vote(vote.clone());
        Ok(vote)
    }

    /// Teacher: stop voting. Closing a closed or published poll changes nothing.
    pub fn close(&mut self, teacher: &Author, poll_id: u64) -> Result<Poll, PollError> {
        if !teacher.is_teacher {
            return Err(PollError::Forbidden("only the teacher may close a poll"));
        }
        let entry = self
            .polls
            .get_mut(&poll_id)
            .ok_or(PollError::NotFound(poll_id))?;
        if entry.poll.state == PollState::Open {
            entry.poll.state = PollState::Closed;
        }
        Ok(entry.poll.clone())
    }

    /// Teacher: show the result on all screens (closes the poll if it is still open).
    pub fn publish(&mut self, teacher: &Author, poll_id: u64) -> Result<PollResults, PollError> {
        if !teacher.is_teacher {
            return Err(PollError::Forbidden("only the teacher may publish a poll"));
        }
        let entry = self
            .polls
            .get_mut(&poll_id)
            .ok_or(PollError::NotFound(poll_id))?;
        entry.poll.state = PollState::Published;
        self.results(poll_id)
    }

    /// Close the open polls whose timer has run out; returns them (to store and announce).
    pub fn tick(&mut self, now: SystemTime) -> Vec<Poll> {
        let mut closed = Vec::new();
        for entry in self.polls.values_mut() {
            if entry.poll.state == PollState::Open && !entry.poll.accepts_votes_at(now) {
                entry.poll.state = PollState::Closed;
                closed.push(entry.poll.clone());
            }
        }
        closed
    }

    /// Live counts per option (for the teacher while the poll is open).
    pub fn counts(&self, poll_id: u64) -> Result<Vec<u32>, PollError> {
        let entry = self
            .polls
            .get(&poll_id)
            .ok_or(PollError::NotFound(poll_id))?;
        let mut counts = vec![0u32; entry.poll.options.len()];
        for vote in entry.votes.values() {
            for &c in &vote.choices {
                if let Some(n) = counts.get_mut(c as usize) {
                    *n += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Counts and, unless the poll is anonymous, who chose what (sorted by name).
    pub fn results(&self, poll_id: u64) -> Result<PollResults, PollError> {
        let entry = self
            .polls
            .get(&poll_id)
            .ok_or(PollError::NotFound(poll_id))?;
        let voters = (!entry.poll.anonymous).then(|| {
            let mut voters: Vec<VoterChoice> = entry
                .votes
                .values()
                .map(|v| VoterChoice {
                    display_name: v.display_name.clone().unwrap_or_default(),
                    kind: v.kind,
                    choices: v.choices.clone(),
                })
                .collect();
            voters.sort_by(|a, b| a.display_name.cmp(&b.display_name));
            voters
        });
        Ok(PollResults {
            poll: entry.poll.clone(),
            counts: self.counts(poll_id)?,
            voters_total: entry.votes.len() as u32,
            voters,
        })
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
    }
    fn teacher() -> Author {
        Author::teacher("r_1")
    }
    fn classroom(id: &str, name: &str) -> Voter {
        Voter {
            voter_id: id.into(),
            display_name: name.into(),
            kind: VoterKind::Classroom,
        }
    }
    fn pupil(id: &str, name: &str) -> Voter {
        Voter {
            voter_id: id.into(),
            display_name: name.into(),
            kind: VoterKind::Pupil,
        }
    }
    fn spec(kind: PollKind, options: &[&str]) -> PollSpec {
        serde_json::from_value(serde_json::json!({
            "question": "Which fraction is bigger?",
            "kind": kind,
            "options": options,
        }))
        .unwrap()
    }

    #[test]
    fn the_teacher_asks_classrooms_and_pupils_answer_and_the_result_is_published() {
        let mut polls = Polls::new(PollLimits::default());
        let poll = polls
            .start(&teacher(), spec(PollKind::Single, &["1/2", "1/3"]), at(0))
            .unwrap();
        assert_eq!(poll.poll_id, 1);
        assert!(poll.anonymous, "anonymous by default");
        polls
            .vote(&classroom("r_2", "Room 2"), 1, &[0], at(1))
            .unwrap();
        polls
            .vote(&classroom("r_3", "Room 3"), 1, &[1], at(2))
            .unwrap();
        polls.vote(&pupil("p_7", "Mia"), 1, &[0], at(3)).unwrap();
        assert_eq!(polls.counts(1).unwrap(), vec![2, 1], "live counts");
        let published = polls.publish(&teacher(), 1).unwrap();
        assert_eq!(published.poll.state, PollState::Published);
        assert_eq!(published.counts, vec![2, 1]);
        assert_eq!(published.voters_total, 3);
        assert_eq!(published.voters, None);
        let err = polls.vote(&pupil("p_8", "Leo"), 1, &[0], at(4));
        assert_eq!(err.unwrap_err().code(), "closed");
    }

    #[test]
    fn one_vote_per_voter_changeable_until_the_poll_closes() {
        let mut polls = Polls::new(PollLimits::default());
        polls
            .start(&teacher(), spec(PollKind::QuickAbcd, &[]), at(0))
            .unwrap();
        let room = classroom("r_2", "Room 2");
        polls.vote(&room, 1, &[0], at(1)).unwrap();
        polls.vote(&room, 1, &[0], at(2)).unwrap();
        assert_eq!(polls.counts(1).unwrap(), vec![1, 0, 0, 0], "still one vote");
        polls.vote(&room, 1, &[3], at(3)).unwrap();
        assert_eq!(polls.counts(1).unwrap(), vec![0, 0, 0, 1], "changed");
        polls.close(&teacher(), 1).unwrap();
        let err = polls.vote(&room, 1, &[2], at(4)).unwrap_err();
        assert_eq!(err.code(), "closed");
        assert_eq!(polls.counts(1).unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(polls.results(1).unwrap().voters_total, 1);
    }

    #[test]
    fn the_timer_closes_the_poll() {
        let mut polls = Polls::new(PollLimits::default());
        let mut s = spec(PollKind::YesNo, &[]);
        s.timer_secs = Some(30);
        let poll = polls.start(&teacher(), s, at(0)).unwrap();
        assert_eq!(poll.options, vec!["Yes", "No"]);
        assert_eq!(poll.closes_at_ms, Some(poll.started_at_ms + 30_000));
        polls.vote(&pupil("p_1", "Mia"), 1, &[1], at(29)).unwrap();
        assert!(polls.tick(at(29)).is_empty());
        // Refused at the deadline even before the tick closes it.
        let err = polls.vote(&pupil("p_2", "Leo"), 1, &[0], at(30));
        assert_eq!(err.unwrap_err().code(), "closed");
        let closed = polls.tick(at(31));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].state, PollState::Closed);
        assert_eq!(polls.counts(1).unwrap(), vec![0, 1]);
    }

    #[test]
    fn names_are_shown_only_when_the_poll_is_not_anonymous() {
        let mut polls = Polls::new(PollLimits::default());
        polls
            .start(&teacher(), spec(PollKind::YesNo, &[]), at(0))
            .unwrap();
        let anon_vote = polls.vote(&pupil("p_1", "Mia"), 1, &[0], at(1)).unwrap();
        assert_eq!(anon_vote.display_name, None, "the name is not even kept");
        assert_eq!(polls.results(1).unwrap().voters, None);
        assert!(
            !serde_json::to_string(&polls.results(1).unwrap())
                .unwrap()
                .contains("Mia")
        );
        polls.close(&teacher(), 1).unwrap();

        let mut named = spec(PollKind::Multiple, &["add", "subtract", "multiply"]);
        named.anonymous = false;
        polls.start(&teacher(), named, at(10)).unwrap();
        polls
            .vote(&pupil("p_1", "Mia"), 2, &[2, 0], at(11))
            .unwrap();
        polls
            .vote(&classroom("r_2", "Room 2"), 2, &[1], at(12))
            .unwrap();
        let results = polls.results(2).unwrap();
        assert_eq!(results.counts, vec![1, 1, 1]);
        let voters = results.voters.unwrap();
        assert_eq!(voters[0].display_name, "Mia");
        assert_eq!(voters[0].choices, vec![0, 2]);
        assert_eq!(voters[1].display_name, "Room 2");
        assert_eq!(voters[1].kind, VoterKind::Classroom);
    }

    #[test]
    fn choices_are_validated_by_kind() {
        let mut polls = Polls::new(PollLimits::default());
        polls
            .start(&teacher(), spec(PollKind::Single, &["a", "b", "c"]), at(0))
            .unwrap();
        let v = pupil("p_1", "Mia");
        for bad in [&[][..], &[0, 1], &[3], &[1, 1]] {
            let err = polls.vote(&v, 1, bad, at(1)).unwrap_err();
            assert_eq!(err.code(), "invalid", "{bad:?}");
        }
        assert_eq!(polls.counts(1).unwrap(), vec![0, 0, 0]);
        polls.close(&teacher(), 1).unwrap();
        polls
            .start(
                &teacher(),
                spec(PollKind::Multiple, &["a", "b", "c"]),
                at(2),
            )
            .unwrap();
        for bad in [&[][..], &[0, 0], &[5]] {
            let err = polls.vote(&v, 2, bad, at(3)).unwrap_err();
            assert_eq!(err.code(), "invalid", "{bad:?}");
        }
        polls.vote(&v, 2, &[0, 1, 2], at(3)).unwrap();
        assert_eq!(
            polls.vote(&v, 9, &[0], at(3)).unwrap_err().code(),
            "not_found"
        );
    }

    #[test]
    fn only_the_teacher_runs_polls_one_open_at_a_time() {
        let mut polls = Polls::new(PollLimits {
            max_polls_per_class: 2,
            ..PollLimits::default()
        });
        let room = Author::classroom("r_2");
        let err = polls.start(&room, spec(PollKind::YesNo, &[]), at(0));
        assert_eq!(err.unwrap_err().code(), "forbidden");
        polls
            .start(&teacher(), spec(PollKind::YesNo, &[]), at(0))
            .unwrap();
        let err = polls.start(&teacher(), spec(PollKind::YesNo, &[]), at(1));
        assert_eq!(err.unwrap_err().code(), "already_open");
        assert_eq!(polls.close(&room, 1).unwrap_err().code(), "forbidden");
        assert_eq!(polls.publish(&room, 1).unwrap_err().code(), "forbidden");
        polls.close(&teacher(), 1).unwrap();
        let bad = [
            spec(PollKind::Single, &["only one"]),
            spec(PollKind::Single, &["same", "same"]),
            spec(PollKind::QuickAbcd, &["A", "B"]),
            spec(PollKind::YesNo, &["Ja", ""]),
            PollSpec {
                timer_secs: Some(0),
                ..spec(PollKind::YesNo, &[])
            },
            PollSpec {
                question: "   ".into(),
                ..spec(PollKind::YesNo, &[])
            },
        ];
        for s in bad {
            let err = polls.start(&teacher(), s.clone(), at(2)).unwrap_err();
            assert_eq!(err.code(), "invalid", "{s:?}");
        }
        let ja_nein = polls
            .start(&teacher(), spec(PollKind::YesNo, &["Ja", "Nein"]), at(2))
            .unwrap();
        assert_eq!(ja_nein.poll_id, 2);
        polls.close(&teacher(), 2).unwrap();
        let err = polls.start(&teacher(), spec(PollKind::YesNo, &[]), at(3));
        assert_eq!(err.unwrap_err().code(), "limit_polls");
    }

    #[test]
    fn poll_json_shapes() {
        let s: PollSpec =
            serde_json::from_str(r#"{"question":"Is 1/2 > 1/3?","kind":"yes_no","timer_secs":60}"#)
                .unwrap();
        assert!(s.anonymous);
        let mut polls = Polls::new(PollLimits::default());
        let poll = polls.start(&teacher(), s, at(0)).unwrap();
        assert_eq!(
            serde_json::to_string(&poll).unwrap(),
            r#"{"poll_id":1,"question":"Is 1/2 > 1/3?","kind":"yes_no","options":["Yes","No"],"anonymous":true,"timer_secs":60,"state":"open","started_at_ms":1767225600000,"closes_at_ms":1767225660000}"#
        );
    }
}
