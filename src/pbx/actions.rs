//! The dialplan actions that play to, record or describe the caller: `dtmf`, `playring`,
//! `jobnum`, `record` and the agent actions (spec §2.7, §3.12, §3.14, §3.15).
//!
//! - `dtmf DIGITS`: the digits are sent to the caller (RFC 4733 or in-band, as its leg
//!   negotiated), 100 ms each; the next detail starts once they are out.
//! - `playring`: the detail's ring tone (a WAV file: `file_path` as is when absolute, else
//!   under the base setting `ring_path`) is played to the caller; the next detail starts when
//!   it ends. PLAYRING and PLAYSTOP events mark it.
//! - `jobnum [EXTENSION]`: the `job_number_prefix` prompt, the job number digit by digit, the
//!   `job_number_suffix` prompt. The job number is the extension's `job_number`, or its
//!   number when that is empty; the extension is the detail's data, else the destination
//!   when it is an extension, else the caller. Prompts are WAV files: as named when
//!   absolute, else under `<sounds.dir>/<sounds.language>/`; digits are
//!   `<sounds.dir>/<language>/digits/N.wav` (made by `scripts/make-sounds`).
//! - `record`: both parties, mixed (mono, 8 kHz: FSGui's `RECORD_STEREO=false`), into
//!   `<record_path>/YYYY/MM/DD/<uuid>.wav` until the call ends; the CDR names the file.
//! - `agent_login`/`agent_logout`/`agent_idle`/`agent_busy`/`agent_ready`: the calling
//!   extension's seat state, seat status or call state ([`super::agents`]).
//!
//! Actions that play need media to the caller: an unanswered caller is given early media
//! (183 with our answer) first, the way a PBX plays announcements before answering.
//!
//! What this module does not do: loop or interrupt a prompt on a digit (IVRs), cache
//! prompts across calls (each is read when played; they are small), or formats other than
//! WAV.
#![allow(clippy::disallowed_methods)] // part of the SIP service driver: reads files, clocks

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::agents::{AgentChange, CallState, SeatState, SeatStatus};
use super::calls::CallKey;
use super::causes::HangupCause;
use super::sip_service::Service;
use crate::events::EventCode;
use crate::media::io::FeedSpec;
use crate::media::record::{Layout, RecordingSink};
use crate::media::wav;
use crate::store::Action;

/// The largest prompt or ring tone read (a few minutes of WAV).
const MAX_PROMPT_BYTES: usize = 32 << 20;

/// How long a digit of `dtmf` lasts, and the pause after it.
const DTMF_DIGIT_MS: u32 = 100;
const DTMF_GAP_MS: u64 = 100;

/// A recording in progress: the file the parties' sinks share.
pub(crate) struct ActiveRecording {
    pub(crate) recording:
        Arc<Mutex<crate::media::record::Recording<std::io::BufWriter<std::fs::File>>>>,
    pub(crate) path: PathBuf,
    /// The callee's sink is attached (once its media exists).
    pub(crate) callee_attached: bool,
    /// A recording shorter than this many frames (8 kHz) is deleted when it ends.
    pub(crate) min_frames: u64,
}

/// What running a playing action led to.
pub(crate) enum Outcome {
    /// Done at once: go on with the next detail.
    Done,
    /// Playing or sending: the details wait until the given time (or a playback's end).
    Wait(Instant),
    /// The detail failed with this cause.
    Failed(HangupCause),
}

impl Service {
    /// Runs one of this module's actions for call `key`.
    pub(crate) fn run_media_action(
        &mut self,
        key: CallKey,
        action: Action,
        data: &str,
        ring_id: Option<i64>,
        now: Instant,
    ) -> Outcome {
        match action {
            Action::Dtmf => self.action_dtmf(key, data, now),
            Action::Playring => self.action_playring(key, ring_id, now),
            Action::Jobnum => self.action_jobnum(key, data, now),
            Action::Record => self.action_record(key),
            Action::AgentLogin => self.agent_action(key, AgentChange::SeatState(SeatState::Up)),
            Action::AgentLogout => self.agent_action(key, AgentChange::SeatState(SeatState::Down)),
            Action::AgentIdle => self.agent_action(key, AgentChange::SeatStatus(SeatStatus::Idle)),
            Action::AgentBusy => self.agent_action(key, AgentChange::SeatStatus(SeatStatus::Busy)),
            Action::AgentReady => self.agent_action(key, AgentChange::CallState(CallState::Ready)),
            _ => Outcome::Failed(HangupCause::ServiceNotImplemented),
        }
    }

    fn agent_action(&mut self, key: CallKey, change: AgentChange) -> Outcome {
        let Some(caller) = self.call_caller(key) else {
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        self.agents.apply(&caller, change);
        Outcome::Done
    }

    fn action_dtmf(&mut self, key: CallKey, digits: &str, now: Instant) -> Outcome {
        let digits: Vec<char> = digits
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if digits.is_empty()
            || !digits
                .iter()
                .all(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            tracing::warn!(digits = ?digits, "dtmf: the data must be digits 0-9, *, #, A-D");
            return Outcome::Failed(HangupCause::InvalidNumberFormat);
        }
        let Some(endpoint) = self.caller_media(key) else {
            return Outcome::Failed(HangupCause::IncompatibleDestination);
        };
        for &digit in &digits {
            self.media.send_dtmf(endpoint, digit, DTMF_DIGIT_MS);
        }
        let per_digit = u64::from(DTMF_DIGIT_MS) + DTMF_GAP_MS;
        Outcome::Wait(now + Duration::from_millis(per_digit * digits.len() as u64 + 200))
    }

    fn action_playring(&mut self, key: CallKey, ring_id: Option<i64>, now: Instant) -> Outcome {
        let snapshot = self.live.current();
        let Some(ring) = ring_id.and_then(|id| snapshot.ring_tones.get(&id)) else {
            tracing::warn!(?ring_id, "playring: the detail names no ring tone");
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        let path = under(
            Path::new(&snapshot.base.value("ring_path").unwrap_or("")),
            &ring.file_path,
        );
        let Some(audio) = read_prompt(&path) else {
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        self.play_to_caller(key, audio.samples, audio.sample_rate, now)
    }

    fn action_jobnum(&mut self, key: CallKey, data: &str, now: Instant) -> Outcome {
        let snapshot = self.live.current();
        let Some((destination, caller)) = self.call_parties(key) else {
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        let whose = [data.trim(), destination.as_str(), caller.as_str()]
            .into_iter()
            .find(|number| !number.is_empty() && snapshot.extensions.contains_key(*number));
        let Some(extension) = whose.and_then(|n| snapshot.extensions.get(n)) else {
            tracing::warn!(data, "jobnum: no extension to announce");
            return Outcome::Failed(HangupCause::UnallocatedNumber);
        };
        let Some(samples) = self.job_number_audio(extension) else {
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        self.play_to_caller(key, samples, 8000, now)
    }

    /// The announcement of `extension`'s job number (its `job_number`, or its number when
    /// that is empty): the `job_number_prefix` prompt, the digits one by one, the
    /// `job_number_suffix` prompt, as 8 kHz audio. `None` (logged) when a prompt is missing.
    pub(crate) fn job_number_audio(&self, extension: &crate::store::Extension) -> Option<Vec<i16>> {
        let snapshot = self.live.current();
        let number = if extension.job_number.trim().is_empty() {
            extension.number.clone()
        } else {
            extension.job_number.trim().to_owned()
        };
        let language_dir = self.sounds.dir.join(&self.sounds.language);
        let mut parts = vec![under(
            &language_dir,
            snapshot
                .base
                .value("job_number_prefix")
                .unwrap_or("job_number_prefix.wav"),
        )];
        for digit in number.chars().filter(char::is_ascii_digit) {
            parts.push(language_dir.join("digits").join(format!("{digit}.wav")));
        }
        parts.push(under(
            &language_dir,
            snapshot
                .base
                .value("job_number_suffix")
                .unwrap_or("job_number_suffix.wav"),
        ));
        let mut samples = Vec::new();
        for part in &parts {
            let audio = read_prompt(part)?;
            if audio.sample_rate == 8000 {
                samples.extend_from_slice(&audio.samples);
            } else {
                crate::media::resample::Resampler::new(audio.sample_rate, 8000)
                    .process(&audio.samples, &mut samples);
            }
        }
        tracing::info!(extension = %extension.number, job_number = %number, "job number announced");
        Some(samples)
    }

    /// Plays `samples` to the caller; the details wait for the end (or a generous deadline,
    /// should the end never be reported).
    fn play_to_caller(
        &mut self,
        key: CallKey,
        samples: Vec<i16>,
        rate: u32,
        now: Instant,
    ) -> Outcome {
        let Some(endpoint) = self.caller_media(key) else {
            return Outcome::Failed(HangupCause::IncompatibleDestination);
        };
        let seconds = samples.len() as f64 / f64::from(rate.max(1));
        let feed = FeedSpec::Play {
            samples: samples.into(),
            rate,
            looping: false,
        };
        if let Err(error) = self.media.set_feed(endpoint, feed) {
            tracing::warn!(%error, "the prompt could not be played");
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        }
        self.note_playback(key, endpoint);
        self.publish_caller_event(key, EventCode::PlayRing);
        Outcome::Wait(now + Duration::from_secs_f64(seconds + 2.0))
    }

    fn action_record(&mut self, key: CallKey) -> Outcome {
        let snapshot = self.live.current();
        let Some(uuid) = self.call_uuid(key) else {
            return Outcome::Failed(HangupCause::NormalTemporaryFailure);
        };
        if self.call_recording(key) {
            return Outcome::Done;
        }
        let day = chrono::Local::now();
        let directory = PathBuf::from(snapshot.base.value("record_path").unwrap_or("records"))
            .join(day.format("%Y").to_string())
            .join(day.format("%m").to_string())
            .join(day.format("%d").to_string());
        let path = directory.join(format!("{uuid}.wav"));
        let created = std::fs::create_dir_all(&directory)
            .and_then(|()| crate::media::record::create_file(&path, 8000, 2, Layout::Mono));
        let recording = match created {
            Ok(recording) => Arc::new(Mutex::new(recording)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "record: the file cannot be made");
                return Outcome::Failed(HangupCause::NormalTemporaryFailure);
            }
        };
        tracing::info!(path = %path.display(), "recording");
        self.start_recording(
            key,
            ActiveRecording {
                recording,
                path,
                callee_attached: false,
                min_frames: 0,
            },
        );
        Outcome::Done
    }

    /// Attaches the recording's sinks to the legs that have media (the callee's when it
    /// has some).
    pub(crate) fn attach_recording_sinks(
        &mut self,
        caller: Option<crate::media::io::EndpointId>,
        callee: Option<crate::media::io::EndpointId>,
        active: &mut ActiveRecording,
    ) {
        if let Some(endpoint) = caller {
            self.media.set_sink(
                endpoint,
                Some(Box::new(RecordingSink {
                    recording: active.recording.clone(),
                    party: 0,
                })),
            );
        }
        if let (Some(endpoint), false) = (callee, active.callee_attached) {
            active.callee_attached = true;
            self.media.set_sink(
                endpoint,
                Some(Box::new(RecordingSink {
                    recording: active.recording.clone(),
                    party: 1,
                })),
            );
        }
    }
}

/// Writes the end of a recording once the media threads have let go of it (they drop the
/// sinks when the endpoints close).
pub(crate) fn finish_recording(active: ActiveRecording) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut shared = active.recording;
        let recording = loop {
            match Arc::try_unwrap(shared) {
                Ok(mutex) => break mutex.into_inner().ok(),
                Err(still_shared) if Instant::now() < deadline => {
                    shared = still_shared;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break None,
            }
        };
        match recording {
            Some(recording) => {
                if let Err(error) =
                    crate::media::record::finish_file(recording, &active.path, active.min_frames)
                {
                    tracing::warn!(path = %active.path.display(), %error, "the recording could not be finished");
                }
            }
            None => tracing::warn!(
                path = %active.path.display(),
                "the recording is still held by the media threads; its header is not final"
            ),
        }
    });
}

/// `name` as is when absolute, else under `directory`.
pub(crate) fn under(directory: &Path, name: &str) -> PathBuf {
    let name = name.trim();
    if Path::new(name).is_absolute() && Path::new(name).exists() {
        PathBuf::from(name)
    } else {
        directory.join(name.trim_start_matches('/'))
    }
}

/// A prompt read from disk; `None` (with a warning naming the file) when it cannot be.
pub(crate) fn read_prompt(path: &Path) -> Option<wav::Audio> {
    load_wav(path)
        .map_err(|error| tracing::warn!(%error, "prompt not usable"))
        .ok()
}

/// A WAV file of at most 32 MiB, decoded.
///
/// # Errors
/// What is wrong, naming the file: missing, unreadable, too large, not a usable WAV.
pub(crate) fn load_wav(path: &Path) -> Result<wav::Audio, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("{}: {error}", path.display()))?
        .len();
    if size > MAX_PROMPT_BYTES as u64 {
        return Err(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_PROMPT_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    wav::read(&bytes, MAX_PROMPT_BYTES)
        .map_err(|error| format!("{} is not a usable WAV file: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_go_under_the_directory_absolute_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.wav");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(under(Path::new("/srv/rings"), file.to_str().unwrap()), file);
        assert_eq!(
            under(Path::new("/srv/rings"), "/uploads/a.wav"),
            PathBuf::from("/srv/rings/uploads/a.wav")
        );
        assert_eq!(
            under(Path::new("sounds/zh"), "job_number_prefix.wav"),
            PathBuf::from("sounds/zh/job_number_prefix.wav")
        );
    }

    #[test]
    fn the_shipped_prompts_are_8_khz_wav() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds");
        for language in ["zh", "en"] {
            let mut names = vec![
                "job_number_prefix.wav".to_owned(),
                "job_number_suffix.wav".to_owned(),
            ];
            names.extend((0..10).map(|d| format!("digits/{d}.wav")));
            for name in names {
                let audio = read_prompt(&root.join(language).join(&name))
                    .unwrap_or_else(|| panic!("{language}/{name}"));
                assert_eq!(audio.sample_rate, 8000, "{language}/{name}");
                let seconds = audio.samples.len() as f64 / 8000.0;
                assert!(
                    (0.15..3.0).contains(&seconds),
                    "{language}/{name}: {seconds} s"
                );
            }
        }
    }
}
